/**
 * Server-wide HTTP plumbing, one global middleware around every route (HttpApi, docs, RPC,
 * WebSocket): request id, one log line per request, security headers, CORS, the body limit, and
 * the envelope for every failure the framework itself produces (unknown route, malformed JSON,
 * oversized body, defects). The REST rate limits are a route middleware (rate-limit.ts): they
 * need what the router resolved.
 */
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Cause, Effect, FiberRef, Option } from "effect"
import { randomUUID } from "node:crypto"
import { ErrorCatalog, type ErrorCode } from "../../domain/errors.ts"
import { AppConfig } from "../config.ts"
import { DbError, isConnectionLost } from "../db/db.ts"
import { recordHttpRequest } from "../metrics.ts"
import { annotateRequestSpan } from "../tracing.ts"

export const errorResponse = (code: ErrorCode, message: string, details?: unknown) =>
  HttpServerResponse.unsafeJson(
    { success: false, error: details === undefined ? { code, message } : { code, message, details } },
    { status: ErrorCatalog[code].status }
  )

const codeByTag = new Map<string, ErrorCode>(
  (Object.keys(ErrorCatalog) as Array<ErrorCode>).map((code) => [ErrorCatalog[code].error._tag, code])
)

/** The envelope of a catalog error, for routes outside the HttpApi (whose errors the builder encodes). */
export const catalogErrorResponse = (error: {
  readonly _tag: string
  readonly message: string
  readonly details?: unknown
}) => errorResponse(codeByTag.get(error._tag) ?? "INTERNAL_ERROR", error.message, error.details)

const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

const requestIdOf = (request: HttpServerRequest.HttpServerRequest): string => {
  const given = request.headers["x-request-id"]
  return given !== undefined && SANE_REQUEST_ID.test(given) ? given : randomUUID()
}

/** The path without its query string: queries may carry tokens and never reach the logs. */
const pathOf = (url: string): string => {
  const end = url.indexOf("?")
  return end === -1 ? url : url.slice(0, end)
}

/** A path as echoed in a message: a crafted one may be kilobytes long. */
const shortPath = (path: string): string => (path.length <= 128 ? path : `${path.slice(0, 128)}…`)

const isBodyTooLarge = (error: HttpServerError.RequestError): boolean =>
  error.cause instanceof Error && error.cause.message === "maxBytes exceeded"

/** Maps what escaped the routes to the envelope; interruption (client gone) passes through. */
const recover = (request: HttpServerRequest.HttpServerRequest) => (cause: Cause.Cause<unknown>) => {
  if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause)
  for (const error of [...Cause.failures(cause), ...Cause.defects(cause)]) {
    if (!HttpServerError.isServerError(error)) continue
    if (error._tag === "RouteNotFound") {
      return Effect.succeed(
        errorResponse("ROUTE_NOT_FOUND", `No route for ${request.method} ${shortPath(pathOf(request.url))}`)
      )
    }
    if (error._tag === "RequestError") {
      if (error.cause instanceof SyntaxError) {
        return Effect.succeed(errorResponse("INVALID_JSON", "The request body is not valid JSON"))
      }
      if (isBodyTooLarge(error)) {
        return Effect.succeed(errorResponse("PAYLOAD_TOO_LARGE", "The request body is too large"))
      }
      return Effect.succeed(errorResponse("BAD_REQUEST", "The request could not be read"))
    }
  }
  // Handlers treat database errors as defects; a lost connection is not a bug but an outage
  // (PostgreSQL restarted, connections terminated): 503, and the pool reconnects on its own.
  const lost = [...Cause.failures(cause), ...Cause.defects(cause)].find(
    (error) => error instanceof DbError && isConnectionLost(error)
  )
  if (lost !== undefined) {
    return Effect.logWarning("Database unavailable while serving a request", lost).pipe(
      Effect.as(errorResponse("SERVICE_UNAVAILABLE", "The database is unavailable; try again shortly"))
    )
  }
  return Effect.logError("Unhandled failure while serving a request", cause).pipe(
    Effect.as(errorResponse("INTERNAL_ERROR", "An unexpected error occurred"))
  )
}

const securityHeaders = (production: boolean): Record<string, string> => ({
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  ...(production ? { "strict-transport-security": "max-age=31536000; includeSubDomains" } : {})
})

/**
 * What a response says of itself unless its route said otherwise: JSON needs no scripts, styles or
 * frames (a page that does, /docs, brings its own policy), and nothing is stored by a cache. An
 * answer to a request with credentials is never stored, whatever its route said, and says it
 * depends on them.
 */
const defaultPolicies = (
  request: HttpServerRequest.HttpServerRequest,
  response: HttpServerResponse.HttpServerResponse
): Record<string, string> => {
  const credentials = request.headers["authorization"] !== undefined
  const vary = response.headers["vary"]
  return {
    ...(response.headers["content-security-policy"] === undefined
      ? { "content-security-policy": "default-src 'none'; frame-ancestors 'none'" }
      : {}),
    ...(credentials || response.headers["cache-control"] === undefined ? { "cache-control": "no-store" } : {}),
    ...(credentials && !/(^|,)\s*authorization\s*(,|$)/i.test(vary ?? "")
      ? { vary: vary === undefined || vary === "" ? "Authorization" : `${vary}, Authorization` }
      : {})
  }
}

/**
 * The route pattern the router matched for the current request (`/api/v1/sessions/:id`), set by
 * `RouteMetrics` and read by the global middleware for the request histogram: a bounded label,
 * where the raw URL would not be. `unmatched` when no route took the request.
 */
const matchedRoute = FiberRef.unsafeMake<string>("unmatched")

/** A route middleware: records which pattern matched (see `matchedRoute`). Give it to every route group. */
export const RouteMetrics = HttpLayerRouter.middleware(
  Effect.succeed(<E, R>(route: HttpApp.Default<E, R>) =>
    Effect.flatMap(HttpRouter.RouteContext, (resolved) =>
      Effect.zipRight(FiberRef.set(matchedRoute, resolved.route.path), route)
    )
  )
).layer

export const HttpPlumbing = HttpLayerRouter.middleware(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const headers = securityHeaders(config.isProduction)
    const cors =
      config.corsOrigins.length === 0
        ? undefined
        : HttpMiddleware.cors({
            allowedOrigins: (origin) => config.corsOrigins.includes("*") || config.corsOrigins.includes(origin),
            allowedHeaders: ["authorization", "content-type", "x-request-id", "idempotency-key"],
            exposedHeaders: [
              "x-request-id",
              "retry-after",
              "ratelimit-limit",
              "ratelimit-remaining",
              "ratelimit-reset",
              "idempotent-replayed"
            ],
            maxAge: 600
          })
    const tooLarge = (request: HttpServerRequest.HttpServerRequest) => {
      const declared = Number(request.headers["content-length"] ?? "0")
      return Number.isFinite(declared) && declared > config.maxBodyBytes
    }

    return (route) =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
        const started = performance.now()
        const requestId = requestIdOf(request)
        return Effect.gen(function* () {
          yield* annotateRequestSpan(request, requestId)
          const handled = (cors === undefined ? route : cors(route)).pipe(
            HttpServerRequest.withMaxBodySize(Option.some(config.maxBodyBytes)),
            Effect.catchAllCause(recover(request))
          )
          const response = tooLarge(request)
            ? errorResponse("PAYLOAD_TOO_LARGE", `The request body is larger than ${config.maxBodyBytes} bytes`, {
                maxBytes: config.maxBodyBytes
              })
            : yield* handled
          const durationMs = performance.now() - started
          yield* Effect.logInfo(`${request.method} ${pathOf(request.url)} ${response.status}`).pipe(
            Effect.annotateLogs({
              method: request.method,
              path: pathOf(request.url),
              status: response.status,
              durationMs: Math.round(durationMs * 100) / 100
            })
          )
          yield* recordHttpRequest(request.method, yield* FiberRef.get(matchedRoute), response.status, durationMs)
          // After the routes' own pre-response handlers (CORS sets Vary in one), so both are kept.
          yield* HttpApp.appendPreResponseHandler((_request, sent) =>
            Effect.succeed(HttpServerResponse.setHeaders(sent, defaultPolicies(request, sent)))
          )
          return HttpServerResponse.setHeaders(response, { ...headers, "x-request-id": requestId })
        }).pipe(Effect.annotateLogs("requestId", requestId))
      })
  }),
  { global: true }
)
