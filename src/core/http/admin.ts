/**
 * Who may use the operator routes (`/metrics`, `/admin/queues`, the worker's `/metrics`):
 *
 * - `ADMIN_TOKEN` set: only a request that presents it, as `Authorization: Bearer <token>` (a
 *   scraper, curl) or as the password of HTTP Basic (a browser, which cannot send a bearer header;
 *   any user name). Compared in constant time. Anything else, a user's Clerk token included, is a 401.
 * - unset, in development: open (`npm run dev`).
 * - unset, in production: off, a 404 like any unknown route (nothing says the routes exist).
 */
import { Option, Redacted } from "effect"
import { createHash, timingSafeEqual } from "node:crypto"

export type AdminDecision = "allowed" | "unauthorized" | "off"

/** The credential an `Authorization` header presents: a bearer token or a Basic password. */
export const presentedCredential = (authorization: string | undefined): string | undefined => {
  const header = authorization ?? ""
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1]
  if (bearer !== undefined) return bearer
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header)?.[1]
  if (basic === undefined) return undefined
  const decoded = Buffer.from(basic, "base64").toString("utf8")
  const colon = decoded.indexOf(":")
  return colon === -1 ? undefined : decoded.slice(colon + 1)
}

/** Equal digests, compared in constant time: neither the content nor the length of the token leaks. */
const sameSecret = (presented: string, expected: string): boolean =>
  timingSafeEqual(createHash("sha256").update(presented).digest(), createHash("sha256").update(expected).digest())

export const adminDecision = (
  config: { readonly adminToken: Option.Option<Redacted.Redacted<string>>; readonly isProduction: boolean },
  authorization: string | undefined
): AdminDecision => {
  if (Option.isNone(config.adminToken)) return config.isProduction ? "off" : "allowed"
  const presented = presentedCredential(authorization)
  return presented !== undefined && sameSecret(presented, Redacted.value(config.adminToken.value))
    ? "allowed"
    : "unauthorized"
}

/** The challenges a refused operator request carries: a scraper's scheme, and Basic so that a browser asks. */
export const ADMIN_CHALLENGE = 'Basic realm="wingmate-admin", charset="UTF-8", Bearer realm="wingmate-admin"'
