/**
 * Verifies Clerk session tokens with `@clerk/backend`: networkless with `CLERK_JWT_KEY`, through
 * Clerk's JWKS with `CLERK_SECRET_KEY`, or with the local dev key pair (dev auth). Verified
 * tokens are remembered until they expire, so a warm request skips the signature check.
 */
import { verifyToken } from "@clerk/backend"
import { TokenVerificationError } from "@clerk/backend/errors"
import { Cache, Context, Duration, Effect, Exit, Layer, Option, Redacted, Schema } from "effect"
import { PlainString } from "../../domain/fields.ts"
import { AppConfig } from "../config.ts"
import { loadOrCreateDevKeys } from "./dev-auth.ts"

/** Why a token was refused: a stable, documented reason (Clerk's own where it has one). */
export class TokenRejected extends Schema.TaggedError<TokenRejected>()("TokenRejected", {
  reason: Schema.String,
  message: Schema.String
}) {}

/** The claims this backend uses. Email and names are optional custom session-token claims. */
const SessionClaims = Schema.Struct({
  // No Clerk id holds a control character or a lone surrogate (nor could PostgreSQL look up a NUL).
  sub: PlainString().pipe(Schema.minLength(1), Schema.maxLength(255)),
  exp: Schema.Number,
  email: Schema.optional(Schema.String),
  first_name: Schema.optional(Schema.String),
  last_name: Schema.optional(Schema.String)
})

export interface VerifiedToken {
  readonly clerkId: string
  readonly email: string | undefined
  readonly firstName: string | undefined
  readonly lastName: string | undefined
  /** Epoch milliseconds. */
  readonly expiresAt: number
}

export interface VerifierOptions {
  readonly jwtKey?: string
  readonly secretKey?: string
  readonly authorizedParties: ReadonlyArray<string>
  readonly clockSkewMs: number
  /** Distinct tokens remembered after verification. */
  readonly cacheCapacity?: number
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

export class TokenVerifier extends Context.Tag("TokenVerifier")<
  TokenVerifier,
  { readonly verify: (token: string) => Effect.Effect<VerifiedToken, TokenRejected> }
>() {
  static make(options: VerifierOptions) {
    return Effect.gen(function* () {
      const verifyOnce = (token: string): Effect.Effect<VerifiedToken, TokenRejected> =>
        Effect.gen(function* () {
          // The package's `verifyToken` resolves with the claims and rejects with a TokenVerificationError.
          const payload = yield* Effect.tryPromise({
            try: () =>
              verifyToken(token, {
                ...(options.jwtKey === undefined ? {} : { jwtKey: options.jwtKey }),
                ...(options.secretKey === undefined ? {} : { secretKey: options.secretKey }),
                ...(options.authorizedParties.length === 0
                  ? {}
                  : { authorizedParties: [...options.authorizedParties] }),
                clockSkewInMs: options.clockSkewMs
              }),
            catch: (cause) =>
              cause instanceof TokenVerificationError
                ? new TokenRejected({ reason: cause.reason, message: cause.message })
                : new TokenRejected({ reason: "token-verification-failed", message: "The token could not be verified" })
          })
          const claims = yield* Schema.decodeUnknown(SessionClaims)(payload).pipe(
            Effect.mapError(() => new TokenRejected({ reason: "token-invalid", message: "The token lacks a subject" }))
          )
          return {
            clerkId: claims.sub,
            email: claims.email,
            firstName: claims.first_name,
            lastName: claims.last_name,
            expiresAt: claims.exp * 1000
          }
        })

      const verified = yield* Cache.makeWith({
        capacity: options.cacheCapacity ?? 10_000,
        lookup: verifyOnce,
        // Rejections are not remembered; a verified token is, until it expires.
        timeToLive: Exit.match({
          onFailure: () => Duration.zero,
          onSuccess: (token) => Duration.millis(Math.max(0, token.expiresAt - Date.now()))
        })
      })

      const verify = (token: string) =>
        token === ""
          ? Effect.fail(new TokenRejected({ reason: "missing-token", message: "Send Authorization: Bearer <token>" }))
          : !JWT_SHAPE.test(token) || token.length > 8192
            ? Effect.fail(new TokenRejected({ reason: "malformed-token", message: "The bearer token is not a JWT" }))
            : verified.get(token).pipe(
                // A remembered token is checked against the clock again (with the same skew).
                Effect.filterOrElse(
                  (identity) => identity.expiresAt + options.clockSkewMs > Date.now(),
                  () => {
                    return verified
                      .invalidate(token)
                      .pipe(
                        Effect.zipRight(
                          Effect.fail(new TokenRejected({ reason: "token-expired", message: "The token has expired" }))
                        )
                      )
                  }
                )
              )
      return TokenVerifier.of({ verify })
    })
  }

  static fromOptions(options: VerifierOptions) {
    return Layer.effect(TokenVerifier, TokenVerifier.make(options))
  }

  /** Clerk keys when configured; the dev key pair otherwise (never in production: config refuses it). */
  static readonly layer = Layer.unwrapEffect(
    Effect.gen(function* () {
      const config = yield* AppConfig
      const common = { authorizedParties: config.clerkAuthorizedParties, clockSkewMs: config.authClockSkewMs }
      if (config.devAuth) {
        const keys = loadOrCreateDevKeys(config.dataDir)
        yield* Effect.logWarning(
          "Auth: no CLERK_JWT_KEY or CLERK_SECRET_KEY, using dev auth (tokens from `npm run dev:token -- <name>`)"
        )
        return TokenVerifier.fromOptions({ ...common, jwtKey: keys.publicKeyPem })
      }
      return TokenVerifier.fromOptions({
        ...common,
        ...Option.match(config.clerkJwtKey, { onNone: () => ({}), onSome: (jwtKey) => ({ jwtKey }) }),
        ...Option.match(config.clerkSecretKey, {
          onNone: () => ({}),
          onSome: (secret) => ({ secretKey: Redacted.value(secret) })
        })
      })
    })
  )
}
