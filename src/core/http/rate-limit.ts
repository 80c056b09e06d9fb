/**
 * REST rate limits: a route middleware (server.ts gives it to the HttpApi's and the RPC server's
 * routes), so it runs on what the router resolved, never on the raw URL. Every spelling the
 * router accepts for an operation (`/API/v1/…`, `//api/v1/…`, `/%61pi/v1/…`, the absolute form)
 * is counted as that operation; a spelling it does not resolve is a 404 before any work.
 * Limited: every operation whose route is under `/api/v1` or `/rpc`, per client IP
 * (`rateLimits.restIp`) and per user (`rateLimits.restUser`, keyed by the Clerk id) when the bearer
 * token verifies. An invalid token counts per IP only and is left to the Authentication
 * middleware's 401. Health probes, `/openapi.json` and the local storage routes are outside them;
 * the Clerk webhook has no bearer token, so it counts per IP only.
 *
 * Over a limit: 429 `RATE_LIMITED` with `Retry-After` and the `RateLimit-*` headers of the rule
 * that refused. Allowed: the `RateLimit-*` headers of the tighter rule (fewer remaining).
 */
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Option } from "effect"
import { ErrorCatalog } from "../../domain/errors.ts"
import { TokenVerifier } from "../auth/token-verifier.ts"
import { AppConfig } from "../config.ts"
import { type RateDecision, RateLimiter } from "../rate-limit/rate-limiter.ts"
import { forwardedAddress } from "./client-address.ts"

/** The REST API and the RPC server's HTTP calls (its WebSocket upgrade counts once, as one request). */
const REST_PREFIXES = ["/api/v1", "/rpc"]
/** The reference and the document it renders: public, large, and cheap to ask for again and again. */
const DOCS_ROUTES = ["/docs", "/openapi.json"]

const under = (route: string, prefix: string) => route === prefix || route.startsWith(`${prefix}/`)

/** `route` is the pattern the router matched (`/api/v1/matches/:id`), not what the client spelled. */
const limitsOf = (route: string): "rest" | "docs" | undefined =>
  REST_PREFIXES.some((prefix) => under(route, prefix))
    ? "rest"
    : DOCS_ROUTES.some((prefix) => under(route, prefix))
      ? "docs"
      : undefined

/** The client's address as the WebSocket gateway sees it (client-address.ts), from the request. */
export const clientIpOf = (request: HttpServerRequest.HttpServerRequest, trustedHops: number): string =>
  forwardedAddress(request.headers["x-forwarded-for"], Option.getOrUndefined(request.remoteAddress), trustedHops)

const bearerOf = (request: HttpServerRequest.HttpServerRequest): string | undefined =>
  /^Bearer\s+(\S+)\s*$/i.exec(request.headers["authorization"] ?? "")?.[1]

const seconds = (ms: number) => Math.ceil(ms / 1_000)

const rateLimitHeaders = (decision: RateDecision): Record<string, string> => ({
  "ratelimit-limit": String(decision.limit),
  "ratelimit-remaining": String(decision.remaining),
  "ratelimit-reset": String(seconds(decision.resetMs))
})

/** The decision whose headers the client sees: the one with the least room left. */
const tighter = (a: RateDecision, b: RateDecision): RateDecision =>
  b.remaining < a.remaining || (b.remaining === a.remaining && b.limit < a.limit) ? b : a

export const tooManyRequests = (decision: RateDecision) =>
  HttpServerResponse.unsafeJson(
    {
      success: false,
      error: { code: "RATE_LIMITED", message: "Too many requests: retry after the Retry-After delay" }
    },
    {
      status: ErrorCatalog.RATE_LIMITED.status,
      headers: { ...rateLimitHeaders(decision), "retry-after": String(Math.max(1, seconds(decision.retryAfterMs))) }
    }
  )

/** The limits as a route middleware (a no-op with RATE_LIMIT_ENABLED=false). */
export const RouteRateLimits = HttpLayerRouter.middleware(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const limiter = yield* RateLimiter
    const verifier = yield* TokenVerifier
    const { enabled, restIp, restUser, docsIp } = config.rateLimits

    /** Per IP, then per user when the token verifies: the decision whose headers are shown, or the refusal. */
    const restDecision = (request: HttpServerRequest.HttpServerRequest, ip: string) =>
      Effect.gen(function* () {
        const byIp = yield* limiter.consume(restIp, `ip:${ip}`)
        if (!byIp.allowed) return byIp
        const token = bearerOf(request)
        const identity = token === undefined ? Option.none() : yield* Effect.option(verifier.verify(token))
        if (Option.isNone(identity)) return byIp
        const byUser = yield* limiter.consume(restUser, `user:${identity.value.clerkId}`)
        return byUser.allowed ? tighter(byIp, byUser) : byUser
      })

    return <E, R>(route: HttpApp.Default<E, R>) =>
      !enabled
        ? route
        : Effect.flatMap(
            Effect.all([HttpServerRequest.HttpServerRequest, HttpRouter.RouteContext]),
            ([request, resolved]) => {
              const limits = limitsOf(resolved.route.path)
              // Preflights carry no credentials and are answered by CORS before reaching here anyway.
              if (request.method === "OPTIONS" || limits === undefined) return route
              return Effect.gen(function* () {
                const ip = clientIpOf(request, config.trustProxy)
                const decision =
                  limits === "rest" ? yield* restDecision(request, ip) : yield* limiter.consume(docsIp, `ip:${ip}`)
                if (!decision.allowed) return tooManyRequests(decision)
                // On whatever the route answers, its failures' envelopes included.
                yield* HttpApp.appendPreResponseHandler((_request, response) =>
                  Effect.succeed(HttpServerResponse.setHeaders(response, rateLimitHeaders(decision)))
                )
                return yield* route
              })
            }
          )
  })
).layer
