/**
 * Server-Sent Events as the streamed operations write them, so that a stock `EventSource` stops:
 * `retry:` first, an `id:` on every event, the response ends after the terminal event, and a
 * reconnect whose `Last-Event-ID` is at or past the terminal event gets 204 (the standard signal
 * to stop reconnecting). A comment every 15 s keeps proxies from closing a quiet stream.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Cause, Effect, Option, Schedule, Stream } from "effect"
import { DbError, isConnectionLost } from "../db/db.ts"

/** The reconnection delay sent first (`retry:`), in milliseconds. */
export const SSE_RETRY_MS = 3000

/** One event: `id:`, `event:`, `data:` (JSON on one line). */
export const sseFrame = (id: string, event: string, data: unknown) =>
  `id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`

const keepAlive = Stream.schedule(Stream.repeatValue(": keep-alive\n\n"), Schedule.spaced("15 seconds"))

/** The `Last-Event-ID` header as sent (a reconnect), trimmed; undefined when absent or empty. */
export const lastEventIdOf = (headers: Readonly<Record<string, string | undefined>>) => {
  const value = headers["last-event-id"]?.trim()
  return value === undefined || value === "" ? undefined : value
}

/**
 * The client asked for the event stream: `Accept` lists `text/event-stream` (any case) with a
 * quality above 0 (`q=0` means "not this"). A wildcard is not a request for a stream.
 */
export const wantsEventStream = (headers: Readonly<Record<string, string | undefined>>) =>
  (headers["accept"] ?? "").split(",").some((range) => {
    const [type = "", ...parameters] = range.split(";").map((part) => part.trim())
    if (type.toLowerCase() !== "text/event-stream") return false
    const q = parameters.find((parameter) => /^q\s*=/i.test(parameter))
    return q === undefined || Number(q.slice(q.indexOf("=") + 1).trim()) > 0
  })

/** The frames as a `text/event-stream` response: `retry:` first, keep-alive comments while it lasts. */
export const sseResponse = <E>(frames: Stream.Stream<string, E>) =>
  HttpServerResponse.stream(
    Stream.concat(Stream.make(`retry: ${SSE_RETRY_MS}\n\n`), frames).pipe(
      Stream.merge(keepAlive, { haltStrategy: "left" }),
      Stream.encodeText
    ),
    {
      contentType: "text/event-stream",
      headers: { "cache-control": "no-cache", "x-accel-buffering": "no" }
    }
  )

/** The stream a reconnect names has ended: 204, no body (an EventSource stops reconnecting). */
export const sseEnded = () => HttpServerResponse.empty({ status: 204 })

/**
 * A stream that died (its database connection lost mid-stream, or a bug) still ends with its
 * terminal `failed` event, so that the client learns it ended: `SERVICE_UNAVAILABLE` for a lost
 * database connection (REST answers it 503), `INTERNAL_ERROR` (logged) for anything else. Typed
 * failures and interruptions pass through: the operation's own `failed` event handles the first.
 */
export const failedOnDefect =
  (failedFrame: (code: "SERVICE_UNAVAILABLE" | "INTERNAL_ERROR", message: string) => string) =>
  <E, R>(frames: Stream.Stream<string, E, R>): Stream.Stream<string, E, R> =>
    Stream.catchAllCause(frames, (cause) => {
      const defect = Cause.dieOption(cause)
      if (Option.isNone(defect) || Cause.isInterrupted(cause)) return Stream.failCause(cause)
      const lost = defect.value instanceof DbError && isConnectionLost(defect.value)
      return Stream.fromEffect(
        lost
          ? Effect.as(
              Effect.logWarning("Database unavailable during a stream", defect.value),
              failedFrame("SERVICE_UNAVAILABLE", "The database is unavailable; try again shortly")
            )
          : Effect.as(
              Effect.logError("A stream failed", cause),
              failedFrame("INTERNAL_ERROR", "An unexpected error occurred")
            )
      )
    })
