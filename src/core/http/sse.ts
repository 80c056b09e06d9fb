/**
 * Server-Sent Events as the streamed operations write them, so that a stock `EventSource` stops:
 * `retry:` first, an `id:` on every event, the response ends after the terminal event, and a
 * reconnect whose `Last-Event-ID` is at or past the terminal event gets 204 (the standard signal
 * to stop reconnecting). A comment every 15 s keeps proxies from closing a quiet stream.
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Schedule, Stream } from "effect"

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

/** The client asked for the event stream. */
export const wantsEventStream = (headers: Readonly<Record<string, string | undefined>>) =>
  (headers["accept"] ?? "").includes("text/event-stream")

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
