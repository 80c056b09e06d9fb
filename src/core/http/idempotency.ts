/**
 * `Idempotency-Key` (IETF httpapi draft, as Stripe practises it) on the POSTs that create or cost
 * something: a route middleware (server.ts gives it to the HttpApi's routes), so it sees what the
 * router resolved and the final response, whatever produced it.
 *
 * - Optional. When sent, 1–255 printable ASCII characters, else 400 `VALIDATION_ERROR`. Only with
 *   a bearer token that verifies (otherwise the route answers its 401 and nothing is kept).
 * - Scope: the user (Clerk id), the operation (method, route pattern, path parameters) and the key.
 *   Fingerprint: SHA-256 of the request body as sent (bytes, not parsed JSON) and of the answer
 *   mode (`Accept: text/event-stream` or JSON).
 * - First request: it runs under a lock (30 s, extended while it runs; a crashed instance frees
 *   the key within 30 s). Its final answer is kept 24 h: every 2xx, and every 4xx except 400,
 *   401, 408, 413, 415 and 429 (refused before the operation ran, or for a moment). Every 5xx,
 *   those 4xx, a request whose client left before its answer (the platform's 499), a stream that
 *   did not end (client gone, interrupted), a stream whose last event is such an error, and an
 *   answer over 1 MiB release the key: a retry runs the operation again.
 * - Same key and fingerprint later: the kept answer (status, body, Content-Type, Cache-Control)
 *   with `Idempotent-Replayed: true`; the operation does not run (no row, no quota, no model
 *   call). A kept event stream is replayed as the same events (keep-alive comments left out), in
 *   one body; with `Last-Event-ID` naming one of its events, only the events after it, and 204
 *   when none is left.
 * - Same key, other fingerprint: 422 `IDEMPOTENCY_KEY_REUSED`. Same key while the first still
 *   runs: 409 `IDEMPOTENCY_KEY_IN_FLIGHT` with `Retry-After`. Store unreachable: 503.
 */
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Option, Schedule, Stream } from "effect"
import { createHash } from "node:crypto"
import { ErrorCatalog } from "../../domain/errors.ts"
import { IDEMPOTENT_OPERATIONS, isKept } from "../../domain/idempotency.ts"
import { TokenVerifier } from "../auth/token-verifier.ts"
import { IdempotencyStore, type StoredResponse } from "../idempotency.ts"
import { errorResponse } from "./middleware.ts"
import { wantsEventStream } from "./sse.ts"

export const KEPT_MS = 24 * 60 * 60 * 1_000
export const LOCK_MS = 30_000
const HEARTBEAT_MS = 10_000
/** Answers larger than this are not kept (the key is released). */
export const MAX_KEPT_BYTES = 1024 * 1024
const VALID_KEY = /^[\x20-\x7E]{1,255}$/
/** Headers of the first answer that a replay repeats (Content-Type comes with the body). */
const KEPT_HEADERS = ["cache-control", "x-accel-buffering", "location", "content-language"]
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex")

const bearerOf = (request: HttpServerRequest.HttpServerRequest): string | undefined =>
  /^Bearer\s+(\S+)\s*$/i.exec(request.headers["authorization"] ?? "")?.[1]

const invalidKey = () =>
  errorResponse("VALIDATION_ERROR", "The request is invalid: see details.issues", {
    issues: [{ path: "Idempotency-Key", message: "Expected 1 to 255 printable ASCII characters" }]
  })

const reused = () =>
  errorResponse(
    "IDEMPOTENCY_KEY_REUSED",
    "This Idempotency-Key was used with another request body (or Accept mode): use a new key for a new request"
  )

/** `Retry-After: 1`: most operations end within seconds, and the answer is then replayed at once. */
const inFlight = () =>
  HttpServerResponse.setHeader(
    errorResponse("IDEMPOTENCY_KEY_IN_FLIGHT", "A request with this Idempotency-Key is still running: retry later"),
    "retry-after",
    "1"
  )

const unavailable = () =>
  HttpServerResponse.setHeader(
    errorResponse("SERVICE_UNAVAILABLE", "Idempotency keys cannot be checked right now; retry shortly"),
    "retry-after",
    "1"
  )

/** SSE frames (separated by a blank line) that carry a field, not only comments. */
const framesOf = (text: string): Array<string> =>
  text
    .replace(/\r\n?/g, "\n")
    .split("\n\n")
    .filter((frame) => frame.split("\n").some((line) => line !== "" && !line.startsWith(":")))

/** The last event's data, when it is an error of the catalog whose status releases the key. */
const endsInFailure = (frames: ReadonlyArray<string>): boolean => {
  const last = [...frames].reverse().find((frame) => frame.split("\n").some((line) => line.startsWith("data:")))
  if (last === undefined) return false
  const data = last
    .split("\n")
    .filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(line.startsWith("data: ") ? 6 : 5))
    .join("\n")
  try {
    const parsed: unknown = JSON.parse(data)
    if (typeof parsed !== "object" || parsed === null || !("code" in parsed) || typeof parsed.code !== "string")
      return false
    const entry = Object.entries(ErrorCatalog).find(([code]) => code === parsed.code)
    return entry !== undefined && !isKept(entry[1].status)
  } catch {
    return false
  }
}

/** The replay of a kept answer (exported for its unit test). */
export const replay = (kept: StoredResponse, lastEventId: string | undefined) => {
  const headers = { ...kept.headers, "idempotent-replayed": "true" }
  if (kept.kind === "bytes") {
    return HttpServerResponse.uint8Array(Buffer.from(kept.body, "base64"), {
      status: kept.status,
      contentType: kept.contentType,
      headers
    })
  }
  let frames = framesOf(kept.body)
  if (lastEventId !== undefined) {
    const at = frames.findIndex((frame) =>
      frame.split("\n").some((line) => /^id: ?(.*)$/.exec(line)?.[1] === lastEventId)
    )
    if (at !== -1) frames = frames.slice(at + 1)
    if (at !== -1 && !frames.some((frame) => frame.split("\n").some((line) => line.startsWith("data:")))) {
      return HttpServerResponse.empty({ status: 204, headers })
    }
  }
  return HttpServerResponse.text(frames.map((frame) => `${frame}\n\n`).join(""), {
    status: kept.status,
    contentType: kept.contentType,
    headers
  })
}

const keptHeaders = (response: HttpServerResponse.HttpServerResponse): Record<string, string> =>
  Object.fromEntries(
    KEPT_HEADERS.flatMap((name) => (response.headers[name] === undefined ? [] : [[name, response.headers[name]]]))
  )

export const RouteIdempotency = HttpLayerRouter.middleware(
  Effect.gen(function* () {
    const store = yield* IdempotencyStore
    const verifier = yield* TokenVerifier

    return <E, R>(route: HttpApp.Default<E, R>) =>
      Effect.flatMap(
        Effect.all([HttpServerRequest.HttpServerRequest, HttpRouter.RouteContext]),
        ([request, resolved]) => {
          const key = request.headers["idempotency-key"]
          const operation = IDEMPOTENT_OPERATIONS.find(
            (candidate) => candidate.method === request.method && candidate.route === resolved.route.path
          )
          if (key === undefined || operation === undefined) return route
          return Effect.gen(function* () {
            const token = bearerOf(request)
            const identity = token === undefined ? Option.none() : yield* Effect.option(verifier.verify(token))
            // No user to scope the key to: the route answers its 401.
            if (Option.isNone(identity)) return yield* route
            if (!VALID_KEY.test(key)) return invalidKey()

            const body = yield* request.text
            const fingerprint = sha256(`${wantsEventStream(request.headers) ? "sse" : "json"}\n${body}`)
            const params = Object.entries(resolved.params).sort(([a], [b]) => a.localeCompare(b))
            const storeKey = `${identity.value.clerkId}:${sha256(
              JSON.stringify([operation.method, operation.route, params, key])
            )}`

            const begun = yield* Effect.either(store.begin(storeKey, fingerprint, LOCK_MS))
            if (begun._tag === "Left") {
              yield* Effect.logWarning("Idempotency store unavailable", begun.left)
              return unavailable()
            }
            const state = begun.right
            if (state._tag === "Done") {
              return state.response.fingerprint === fingerprint
                ? replay(state.response, request.headers["last-event-id"])
                : reused()
            }
            if (state._tag === "InFlight") {
              return state.fingerprint === fingerprint ? inFlight() : reused()
            }

            const lock = state.lock
            const release = store
              .release(storeKey, lock)
              .pipe(Effect.catchAll((error) => Effect.logWarning("Idempotency key not released (it expires)", error)))
            const keep = (response: Omit<StoredResponse, "fingerprint">) =>
              store
                .complete(storeKey, lock, { ...response, fingerprint }, KEPT_MS)
                .pipe(
                  Effect.catchAll((error) => Effect.as(Effect.logWarning("Idempotent answer not kept", error), false))
                )
            // Whatever happens (an answer not kept, a client gone, an interruption), the lock goes with
            // the request; after `keep` it is no longer this request's, so this does nothing.
            yield* Effect.addFinalizer(() => release)
            yield* Effect.forkScoped(
              store
                .extend(storeKey, lock, LOCK_MS)
                .pipe(Effect.ignore, Effect.repeat(Schedule.spaced(HEARTBEAT_MS)), Effect.delay(HEARTBEAT_MS))
            )

            yield* HttpApp.appendPreResponseHandler((_request, response) => {
              const base = { status: response.status, headers: keptHeaders(response) }
              const body = response.body
              if (!isKept(response.status)) return Effect.as(release, response)
              switch (body._tag) {
                case "Empty":
                  return Effect.as(keep({ ...base, contentType: "", kind: "bytes", body: "" }), response)
                case "Uint8Array":
                  return body.body.length > MAX_KEPT_BYTES
                    ? Effect.as(release, response)
                    : Effect.as(
                        keep({
                          ...base,
                          contentType: body.contentType,
                          kind: "bytes",
                          body: Buffer.from(body.body).toString("base64")
                        }),
                        response
                      )
                case "Stream": {
                  const chunks: Array<Uint8Array> = []
                  let size = 0
                  const settle = Effect.suspend(() => {
                    const frames = framesOf(Buffer.concat(chunks).toString("utf8"))
                    return size > MAX_KEPT_BYTES || endsInFailure(frames)
                      ? release
                      : keep({
                          ...base,
                          contentType: body.contentType,
                          kind: "stream",
                          body: frames.map((frame) => `${frame}\n\n`).join("")
                        })
                  })
                  const captured = body.stream.pipe(
                    Stream.tap((chunk) =>
                      Effect.sync(() => {
                        size += chunk.length
                        if (size <= MAX_KEPT_BYTES) chunks.push(chunk)
                      })
                    ),
                    // Only a stream that reached its end is kept; before its last bytes go out.
                    Stream.onEnd(settle)
                  )
                  return Effect.succeed(
                    HttpServerResponse.setBody(
                      response,
                      HttpBody.stream(captured, body.contentType, body.contentLength)
                    )
                  )
                }
                default:
                  return Effect.as(release, response)
              }
            })
            return yield* route
          })
        }
      )
  })
).layer
