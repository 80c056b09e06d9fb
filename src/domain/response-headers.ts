/**
 * The response headers the server adds around every route, in OpenAPI (the generator has no way
 * to attach headers to responses): an `OpenApi.Transform` for the whole API that declares them in
 * `components.headers` and references them from each response that carries them.
 *
 * - `X-Request-Id` on every answer (src/core/http/middleware.ts).
 * - `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` on every answer under `/api/v1`
 *   while the REST limits are on (src/core/http/rate-limit.ts; the health probes are not limited).
 * - `Retry-After` on every 429: the REST limits, the export's own limit and the daily quotas
 *   (src/core/http/rate-limit.ts, src/core/http/retry-after.ts, src/modules/users/users.http.ts).
 */

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

const nonNegative = { type: "integer", minimum: 0 }

export const ResponseHeaders = {
  "X-Request-Id": {
    description:
      "The request's id, also on the server's log line for it: the client's own `X-Request-Id` when it is " +
      "1 to 128 of `A-Z a-z 0-9 . _ : -`, otherwise a new UUID.",
    required: true,
    schema: { type: "string", pattern: "^[A-Za-z0-9._:-]{1,128}$" }
  },
  "RateLimit-Limit": {
    description:
      "Requests allowed in the current window by the rule closest to refusing (per address, or per user " +
      "once the bearer token verifies). Sent on every answer under /api/v1 while rate limits are on.",
    schema: nonNegative
  },
  "RateLimit-Remaining": {
    description: "Requests left in the current window of that rule (0 on a 429 RATE_LIMITED).",
    schema: nonNegative
  },
  "RateLimit-Reset": {
    description: "Seconds until that rule's window resets.",
    schema: nonNegative
  },
  "Retry-After": {
    description:
      "Seconds to wait before trying again (RFC 9110 §10.2.3): the rate limit's window or the quota's reset.",
    required: true,
    schema: { type: "integer", minimum: 1 }
  }
} as const

type HeaderName = keyof typeof ResponseHeaders

const ref = (name: HeaderName) => ({ $ref: `#/components/headers/${name}` })

const RATE_LIMIT_HEADERS: ReadonlyArray<HeaderName> = ["RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"]

/** The headers a response of this path and status carries. */
export const headersOf = (path: string, status: string): ReadonlyArray<HeaderName> => [
  "X-Request-Id",
  ...(path === "/api/v1" || path.startsWith("/api/v1/") ? RATE_LIMIT_HEADERS : []),
  ...(status === "429" ? (["Retry-After"] as const) : [])
]

const withHeaders = (path: string, operation: unknown): unknown => {
  if (!isRecord(operation) || !isRecord(operation["responses"])) return operation
  const responses = Object.entries(operation["responses"]).map(([status, response]) => {
    if (!isRecord(response)) return [status, response]
    const headers = isRecord(response["headers"]) ? response["headers"] : {}
    const added = Object.fromEntries(headersOf(path, status).map((name) => [name, ref(name)]))
    return [status, { ...response, headers: { ...headers, ...added } }]
  })
  return { ...operation, responses: Object.fromEntries(responses) }
}

/** An `OpenApi.Transform`: every response of every operation declares the headers it carries. */
export const withResponseHeaders = (spec: Record<string, unknown>): Record<string, unknown> => {
  const paths = isRecord(spec["paths"]) ? spec["paths"] : {}
  const documented = Object.entries(paths).map(([path, item]) => [
    path,
    isRecord(item)
      ? Object.fromEntries(Object.entries(item).map(([method, operation]) => [method, withHeaders(path, operation)]))
      : item
  ])
  const components = isRecord(spec["components"]) ? spec["components"] : {}
  const headers = isRecord(components["headers"]) ? components["headers"] : {}
  return {
    ...spec,
    paths: Object.fromEntries(documented),
    components: { ...components, headers: { ...headers, ...ResponseHeaders } }
  }
}
