/**
 * Authentication contracts: Clerk session JWTs as `Authorization: Bearer <jwt>`. Handlers see
 * the internal user id only (the seed's loadUser), never raw token claims.
 */
import * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import * as HttpApiSecurity from "@effect/platform/HttpApiSecurity"
import { Context, Effect } from "effect"
import { accountErased, NotFound, type Unauthorized, UnauthorizedEnvelope } from "./errors.ts"

/** The caller, mapped from the token's Clerk id to the internal user (provisioned just in time). */
export class CurrentUser extends Context.Tag("CurrentUser")<
  CurrentUser,
  {
    readonly id: string
    readonly clerkId: string
    /**
     * Whether the caller's erasure has started, from its tombstone: the mapping that let the
     * request in may be older (cached here, the erasure on another instance). A read per call.
     */
    readonly erased: Effect.Effect<boolean>
  }
>() {}

/** A handler's failures once `withUser` ran it: `Unauthorized` too, where it may fail `NotFound`. */
export type ErasedWhenMissing<E> = [Extract<E, NotFound>] extends [never] ? E : E | Unauthorized

/**
 * Runs `f` with the caller's internal user id (handlers of the HttpApi and RPC groups). What it
 * finds missing is `account-erased` when the caller's erasure has started: the account's
 * resources went with it, and the request is refused as its start now would be. The tombstone is
 * read only then, never on the way of a request that finds what it looks for.
 */
export function withUser<A, E, R>(
  f: (userId: string) => Effect.Effect<A, E, R>
): Effect.Effect<A, ErasedWhenMissing<E>, R | CurrentUser>
export function withUser<A, E, R>(
  f: (userId: string) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | Unauthorized, R | CurrentUser> {
  return Effect.flatMap(CurrentUser, (user) =>
    Effect.catchIf(
      f(user.id),
      (error) => error instanceof NotFound,
      (missing) => Effect.flatMap(user.erased, (erased) => Effect.fail(erased ? accountErased() : missing))
    )
  )
}

/** Verifies the bearer token and provides `CurrentUser`; 401 `UNAUTHORIZED` otherwise. */
export class Authentication extends HttpApiMiddleware.Tag<Authentication>()("Authentication", {
  failure: UnauthorizedEnvelope,
  provides: CurrentUser,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

/** The verified Clerk identity alone, for the one route that must work after erasure (erasure itself). */
export class ClerkIdentity extends Context.Tag("ClerkIdentity")<ClerkIdentity, { readonly clerkId: string }>() {}

export class TokenAuthentication extends HttpApiMiddleware.Tag<TokenAuthentication>()("TokenAuthentication", {
  failure: UnauthorizedEnvelope,
  provides: ClerkIdentity,
  security: { bearer: HttpApiSecurity.bearer }
}) {}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

const CHALLENGE_HEADER = {
  description: 'RFC 6750: `Bearer` without a token; `Bearer error="invalid_token"` when a token was sent and refused.',
  schema: { type: "string" }
}

const withChallenge = (operation: unknown): unknown => {
  if (!isRecord(operation) || !isRecord(operation["responses"])) return operation
  const responses = operation["responses"]
  const unauthorized = responses["401"]
  if (!isRecord(unauthorized)) return operation
  const headers = isRecord(unauthorized["headers"]) ? unauthorized["headers"] : {}
  return {
    ...operation,
    responses: {
      ...responses,
      "401": { ...unauthorized, headers: { ...headers, "WWW-Authenticate": CHALLENGE_HEADER } }
    }
  }
}

/**
 * An `OpenApi.Transform` for the whole API: every documented 401 declares the `WWW-Authenticate`
 * challenge the server sends with it (the generator has no way to attach headers to an error).
 */
export const withBearerChallenge = (spec: Record<string, unknown>): Record<string, unknown> => {
  const paths = isRecord(spec["paths"]) ? spec["paths"] : {}
  const documented = Object.entries(paths).map(([path, item]) => [
    path,
    isRecord(item) ? Object.fromEntries(Object.entries(item).map(([key, value]) => [key, withChallenge(value)])) : item
  ])
  return { ...spec, paths: Object.fromEntries(documented) }
}
