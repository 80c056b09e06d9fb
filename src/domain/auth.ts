/**
 * Authentication contracts: Clerk session JWTs as `Authorization: Bearer <jwt>`. Handlers see
 * the internal user id only (the seed's loadUser), never raw token claims.
 */
import { HttpApiMiddleware, HttpApiSecurity } from "@effect/platform"
import { Context } from "effect"
import { UnauthorizedEnvelope } from "./errors.ts"

/** The caller, mapped from the token's Clerk id to the internal user (provisioned just in time). */
export class CurrentUser extends Context.Tag("CurrentUser")<
  CurrentUser,
  { readonly id: string; readonly clerkId: string }
>() {}

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
