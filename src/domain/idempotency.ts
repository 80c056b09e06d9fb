/**
 * The `Idempotency-Key` contract (the behaviour is src/core/http/idempotency.ts): which
 * operations take the header, and how OpenAPI says so.
 */

/** The operations that take `Idempotency-Key`: method and route pattern as the router matches them. */
export const IDEMPOTENT_OPERATIONS: ReadonlyArray<{ readonly method: "POST"; readonly route: string }> = [
  { method: "POST", route: "/api/v1/uploads" },
  { method: "POST", route: "/api/v1/sessions" },
  { method: "POST", route: "/api/v1/magic-openers/generate" },
  { method: "POST", route: "/api/v1/sessions/:sessionId/suggestions" }
]

/**
 * Statuses a first request's answer is kept (and replayed) with: every 2xx, and 4xx but these.
 * 499 is not an answer: it is @effect/platform's status for a request whose client left before
 * its end (the operation interrupted), which the retry must run again.
 */
const NOT_KEPT_4XX = new Set([400, 401, 408, 413, 415, 429, 499])
export const isKept = (status: number) => status < 400 || (status < 500 && !NOT_KEPT_4XX.has(status))

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

const KEY_PARAMETER = {
  name: "Idempotency-Key",
  in: "header",
  required: false,
  description:
    "Makes a retry safe (IETF httpapi Idempotency-Key draft): 1 to 255 printable ASCII characters, e.g. a UUID " +
    "made per user action. For 24 h, the same key with the same body (and the same Accept mode) replays the " +
    "first answer without running the operation again (`Idempotent-Replayed: true`); with another body, 422 " +
    "IDEMPOTENCY_KEY_REUSED; while the first still runs, 409 IDEMPOTENCY_KEY_IN_FLIGHT with Retry-After. " +
    "Keys are per user and per operation. 5xx, 400, 401, 408, 413, 415 and 429 answers are not kept (a retry " +
    "runs again), nor is a request the client left before its answer, nor an event stream that did not reach its end.",
  schema: { type: "string", minLength: 1, maxLength: 255, pattern: "^[\\x20-\\x7E]{1,255}$" }
}

const REPLAYED_HEADER = {
  description: "`true` when this answer is the replay of the first request with the same Idempotency-Key.",
  schema: { type: "string", enum: ["true"] }
}

const openApiPathOf = (route: string) => route.replace(/:([A-Za-z0-9_]+)/g, "{$1}")

const withIdempotencyKey = (operation: Record<string, unknown>): Record<string, unknown> => {
  const parameters = Array.isArray(operation["parameters"]) ? operation["parameters"] : []
  const responses = isRecord(operation["responses"]) ? operation["responses"] : {}
  return {
    ...operation,
    parameters: [...parameters, KEY_PARAMETER],
    responses: Object.fromEntries(
      Object.entries(responses).map(([status, response]) => {
        if (!isRecord(response) || !isKept(Number(status))) return [status, response]
        const headers = isRecord(response["headers"]) ? response["headers"] : {}
        return [status, { ...response, headers: { ...headers, "Idempotent-Replayed": REPLAYED_HEADER } }]
      })
    )
  }
}

/**
 * An `OpenApi.Transform` for the whole API: the idempotent operations document the
 * `Idempotency-Key` header and, on the answers that can be replayed, `Idempotent-Replayed`.
 */
export const withIdempotencyKeys = (spec: Record<string, unknown>): Record<string, unknown> => {
  const paths = isRecord(spec["paths"]) ? { ...spec["paths"] } : {}
  for (const { method, route } of IDEMPOTENT_OPERATIONS) {
    const path = openApiPathOf(route)
    const item = paths[path]
    const operation = isRecord(item) ? item[method.toLowerCase()] : undefined
    if (!isRecord(item) || !isRecord(operation)) continue
    paths[path] = { ...item, [method.toLowerCase()]: withIdempotencyKey(operation) }
  }
  return { ...spec, paths }
}
