/**
 * A stock `EventSource` (the `eventsource` package) as the app would use it: the bearer token
 * (and, for a POST stream, the method and body) added by its `fetch` option, which also records
 * every request it makes, reconnects included. Resolves once the source is closed for good
 * (a 204, or any failure it does not retry); rejects if it reconnects more than `maxRequests` times.
 */
import { Effect } from "effect"
import { EventSource } from "eventsource"

export interface SourcedEvent {
  readonly event: string
  readonly id: string
  readonly data: unknown
}

export interface SourceRun {
  readonly events: ReadonlyArray<SourcedEvent>
  /** Each request the source made: its `Last-Event-ID` (absent on the first) and the status it got. */
  readonly requests: ReadonlyArray<{ readonly lastEventId: string | undefined; readonly status: number }>
  /** The status of the error that closed the source (204: told to stop). */
  readonly closedWith: number | undefined
}

export const runEventSource = (
  url: string,
  options: {
    readonly headers: Record<string, string>
    readonly events: ReadonlyArray<string>
    readonly post?: unknown
    readonly maxRequests?: number
  }
) =>
  Effect.async<SourceRun, Error>((resume) => {
    const events: Array<SourcedEvent> = []
    const requests: Array<{ lastEventId: string | undefined; status: number }> = []
    const maxRequests = options.maxRequests ?? 3
    const source = new EventSource(url, {
      fetch: async (input, init) => {
        const lastEventId = init.headers["Last-Event-ID"] ?? init.headers["last-event-id"]
        const response = await fetch(input, {
          ...init,
          headers: {
            ...init.headers,
            ...options.headers,
            ...(options.post === undefined ? {} : { "content-type": "application/json" })
          },
          ...(options.post === undefined ? {} : { method: "POST", body: JSON.stringify(options.post) })
        })
        requests.push({ lastEventId, status: response.status })
        if (requests.length > maxRequests) {
          source.close()
          resume(Effect.fail(new Error(`EventSource reconnected ${requests.length} times`)))
        }
        return response
      }
    })
    for (const name of options.events) {
      source.addEventListener(name, (message) => {
        events.push({ event: name, id: message.lastEventId, data: JSON.parse(message.data) as unknown })
      })
    }
    source.addEventListener("error", (error) => {
      if (source.readyState === EventSource.CLOSED) {
        resume(Effect.succeed({ events, requests, closedWith: error.code }))
      }
    })
    return Effect.sync(() => source.close())
  })
