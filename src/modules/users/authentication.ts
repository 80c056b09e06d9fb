/**
 * The bearer-token middlewares: verify the Clerk JWT, then map it to the internal user. Every
 * refusal is a 401 `UNAUTHORIZED` envelope with the reason in `details`.
 */
import { Effect, Layer, Redacted } from "effect"
import { TokenVerifier, type TokenRejected } from "../../core/auth/token-verifier.ts"
import { Authentication, TokenAuthentication } from "../../domain/auth.ts"
import { Unauthorized } from "../../domain/errors.ts"
import { UsersService } from "./users.service.ts"

const rejected = (error: TokenRejected) =>
  new Unauthorized({ message: "Authentication failed", details: { reason: error.reason } })

export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.gen(function* () {
    const verifier = yield* TokenVerifier
    const users = yield* UsersService
    return Authentication.of({
      bearer: (token) =>
        verifier.verify(Redacted.value(token)).pipe(
          Effect.flatMap(users.resolve),
          Effect.catchTags({
            TokenRejected: (error) => Effect.fail(rejected(error)),
            AccountErased: () =>
              Effect.fail(
                new Unauthorized({ message: "This account was erased", details: { reason: "account-erased" } })
              ),
            DbError: Effect.die
          })
        )
    })
  })
)

export const TokenAuthenticationLive = Layer.effect(
  TokenAuthentication,
  Effect.gen(function* () {
    const verifier = yield* TokenVerifier
    return TokenAuthentication.of({
      bearer: (token) =>
        verifier.verify(Redacted.value(token)).pipe(
          Effect.map((identity) => ({ clerkId: identity.clerkId })),
          Effect.mapError(rejected)
        )
    })
  })
)
