/**
 * Authentication contracts: Clerk session JWTs as `Authorization: Bearer <jwt>`. Handlers see
 * the internal user id only (the seed's loadUser), never raw token claims.
 */
import { HttpApiMiddleware, HttpApiSecurity } from "@effect/platform"
import { Context, Effect } from "effect"
import { UnauthorizedEnvelope } from "./errors.ts"

/** The caller, mapped from the token's Clerk id to the internal user (provisioned just in time). */
export class CurrentUser extends Context.Tag("CurrentUser")<
  CurrentUser,
  { readonly id: string; readonly clerkId: string }
>() {}

/** Runs `f` with the caller's internal user id (handlers of the HttpApi and RPC groups). */
export const withUser = <A, E, R>(f: (userId: string) => Effect.Effect<A, E, R>) =>
  Effect.flatMap(CurrentUser, (user) => f(user.id))

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
