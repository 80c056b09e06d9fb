/**
 * The bearer-token middlewares (HttpApi and RPC): verify the Clerk JWT, then map it to the
 * internal user. Every refusal is `Unauthorized` (401 over REST, with `WWW-Authenticate: Bearer`) with
 * the reason in `details`.
 */
import { Effect, Layer, Redacted } from "effect"
import { TokenVerifier, type TokenRejected } from "../../core/auth/token-verifier.ts"
import { AppConfig } from "../../core/config.ts"
import { challengeOnUnauthorized } from "../../core/http/challenge.ts"
import { Erasure } from "../../core/erasure.ts"
import { RateLimiter } from "../../core/rate-limit/rate-limiter.ts"
import { Authentication, type CurrentUser, TokenAuthentication } from "../../domain/auth.ts"
import { RpcAuthentication, RpcTokenAuthentication } from "../../domain/rpc.ts"
import { accountErased, RateLimited, Unauthorized } from "../../domain/errors.ts"
import { UsersService } from "./users.service.ts"

const rejected = (error: TokenRejected) =>
  new Unauthorized({ message: "Authentication failed", details: { reason: error.reason } })

/**
 * Bearer token → the internal user and when the token expires: the one path behind the HttpApi's
 * `Authentication`, the RPC server's `RpcAuthentication` and the WebSocket gateway's `auth` frame.
 */
export const makeAuthenticateWithExpiry = Effect.gen(function* () {
  const verifier = yield* TokenVerifier
  const users = yield* UsersService
  return (token: string): Effect.Effect<{ user: CurrentUser["Type"]; expiresAt: number }, Unauthorized> =>
    verifier.verify(token).pipe(
      Effect.flatMap((verified) =>
        Effect.map(users.resolve(verified), (user) => ({ user, expiresAt: verified.expiresAt }))
      ),
      Effect.catchTags({
        TokenRejected: (error) => Effect.fail(rejected(error)),
        AccountErased: () => Effect.fail(accountErased()),
        DbError: Effect.die,
        ErasureFailed: Effect.die
      })
    )
})

/** Bearer token → the internal user. */
export const makeAuthenticate = Effect.map(
  makeAuthenticateWithExpiry,
  (authenticate) =>
    (token: string): Effect.Effect<CurrentUser["Type"], Unauthorized> =>
      Effect.map(authenticate(token), ({ user }) => user)
)

export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.map(makeAuthenticate, (authenticate) =>
    Authentication.of({
      bearer: (token) =>
        Effect.zipRight(challengeOnUnauthorized(Redacted.value(token) !== ""), authenticate(Redacted.value(token)))
    })
  )
)

/** The token of `authorization: Bearer <jwt>`; "" when there is none (refused as `missing-token`). */
const bearerToken = (authorization: string | undefined) => {
  if (authorization === undefined) return ""
  const match = /^Bearer\s+(.*)$/i.exec(authorization.trim())
  return match?.[1] ?? authorization
}

/**
 * The RPC server's authentication: the same path, on the request's (or message's) headers. Every
 * call also counts against `RATE_LIMIT_WS_MESSAGE_USER` for its user: over a WebSocket, calls are
 * messages that the HTTP limits (one per upgrade) never see.
 */
/** Counts an RPC call against `RATE_LIMIT_WS_MESSAGE_USER` for its user (Clerk id). */
const makeRpcCallLimit = Effect.gen(function* () {
  const limiter = yield* RateLimiter
  const limits = (yield* AppConfig).rateLimits
  return (clerkId: string) =>
    Effect.gen(function* () {
      if (!limits.enabled) return
      const decision = yield* limiter.consume(limits.wsMessageUser, `rpc:user:${clerkId}`)
      if (!decision.allowed) {
        return yield* new RateLimited({
          message: "Too many calls: retry after details.retryAfterMs",
          details: { retryAfterMs: decision.retryAfterMs }
        })
      }
    })
})

export const RpcAuthenticationLive = Layer.effect(
  RpcAuthentication,
  Effect.gen(function* () {
    const authenticate = yield* makeAuthenticate
    const callLimit = yield* makeRpcCallLimit
    return RpcAuthentication.of(({ headers }) =>
      Effect.gen(function* () {
        const user = yield* authenticate(bearerToken(headers["authorization"]))
        yield* callLimit(user.clerkId)
        return user
      })
    )
  })
)

/** `users.eraseMe`'s: the token verified (not mapped to a user, which may be gone), then the call limit. */
export const RpcTokenAuthenticationLive = Layer.effect(
  RpcTokenAuthentication,
  Effect.gen(function* () {
    const verifier = yield* TokenVerifier
    const callLimit = yield* makeRpcCallLimit
    return RpcTokenAuthentication.of(({ headers }) =>
      Effect.gen(function* () {
        const identity = yield* verifier.verify(bearerToken(headers["authorization"])).pipe(Effect.mapError(rejected))
        yield* callLimit(identity.clerkId)
        return { clerkId: identity.clerkId }
      })
    )
  })
)

export const TokenAuthenticationLive = Layer.effect(
  TokenAuthentication,
  Effect.gen(function* () {
    const verifier = yield* TokenVerifier
    return TokenAuthentication.of({
      bearer: (token) =>
        Effect.zipRight(
          challengeOnUnauthorized(Redacted.value(token) !== ""),
          verifier.verify(Redacted.value(token)).pipe(
            Effect.map((identity) => ({ clerkId: identity.clerkId })),
            Effect.mapError(rejected)
          )
        )
    })
  })
)

/**
 * Account erasure: the rate-limit windows keyed by the user's Clerk id (REST `user:<id>`, RPC
 * `rpc:user:<id>`). A request with the erased account's token still counts under `user:<id>`
 * before it is refused; that window expires on its own after the rule's window.
 */
export const RateLimitsErasureLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const erasure = yield* Erasure
    const limiter = yield* RateLimiter
    yield* erasure.register({ name: "rate-limits", erase: (user) => limiter.forget(`user:${user.clerkId}`) })
  })
)
