/**
 * A raw RPC WebSocket (`/rpc`) for tests that speak the wire protocol of @effect/rpc by hand
 * (messages the typed client would never send): every message received is kept in order, and a
 * test waits for the next one matching a predicate. A wait has no deadline of its own (the test
 * runner's timeout is the guard) but fails at once when the server closes the socket, with what
 * it had received.
 */
import { Effect } from "effect"
import WebSocket from "ws"
import { readStreamed } from "./http.ts"

/** A message from the server: `Chunk`, `Exit`, `Defect`, `Pong`… */
export interface RpcWireMessage {
  readonly _tag: string
  readonly [key: string]: unknown
}

export interface RpcSocket {
  readonly ws: WebSocket
  /** Every message received so far, in order. */
  readonly received: Array<RpcWireMessage>
  /** Sends `message` as JSON, or a string as it is. */
  readonly send: (message: unknown) => Effect.Effect<void>
  /** The first message not yet taken matching `match`; dies if the socket closes first. */
  readonly next: (match: (message: RpcWireMessage) => boolean) => Effect.Effect<RpcWireMessage>
}

const isWireMessage = (value: unknown): value is RpcWireMessage =>
  typeof value === "object" && value !== null && "_tag" in value && typeof value._tag === "string"

/** A `Request` message of `tag`, its id a string as the wire carries it, with the caller's token. */
export const rpcRequest = (id: string, tag: string, payload: unknown, token?: string) => ({
  _tag: "Request",
  id,
  tag,
  payload,
  headers: token === undefined ? [] : [["authorization", `Bearer ${token}`]]
})

/** Opens `/rpc` as a WebSocket (closed with the scope); fails if the handshake is refused. */
export const openRpcSocket = (baseUrl: string) =>
  Effect.acquireRelease(
    Effect.async<RpcSocket, Error>((resume) => {
      const ws = new WebSocket(`${baseUrl.replace(/^http/, "ws")}/rpc`)
      const received: Array<RpcWireMessage> = []
      let taken = 0
      let closed: { readonly code: number; readonly reason: string } | undefined
      const waiters = new Set<() => void>()
      const wake = () => {
        for (const waiter of [...waiters]) waiter()
      }
      ws.on("message", (data) => {
        const parsed: unknown = JSON.parse(data.toString())
        for (const message of Array.isArray(parsed) ? parsed : [parsed]) {
          if (isWireMessage(message)) received.push(message)
        }
        wake()
      })
      ws.on("close", (code, reason) => {
        closed = { code, reason: reason.toString() }
        wake()
      })
      ws.on("unexpected-response", (_request, response) =>
        resume(Effect.fail(new Error(`handshake refused: ${response.statusCode}`)))
      )
      ws.on("error", (error) => resume(Effect.fail(error)))
      ws.on("open", () =>
        resume(
          Effect.succeed({
            ws,
            received,
            send: (message) =>
              Effect.sync(() => ws.send(typeof message === "string" ? message : JSON.stringify(message))),
            next: (match) =>
              Effect.async<RpcWireMessage>((done) => {
                const attempt = () => {
                  for (let i = taken; i < received.length; i++) {
                    const message = received[i]
                    if (message !== undefined && match(message)) {
                      taken = i + 1
                      waiters.delete(attempt)
                      done(Effect.succeed(message))
                      return
                    }
                  }
                  if (closed === undefined) return
                  waiters.delete(attempt)
                  done(
                    Effect.dieMessage(
                      `the socket closed (${closed.code} ${closed.reason}) first; received: ${JSON.stringify(received.slice(-10)).slice(0, 2000)}`
                    )
                  )
                }
                waiters.add(attempt)
                attempt()
                return Effect.sync(() => waiters.delete(attempt))
              })
          })
        )
      )
    }),
    (socket) => Effect.sync(() => socket.ws.terminate())
  )

/**
 * One RPC request over HTTP (NDJSON), its answer read line by line as it comes: `onLine` is awaited
 * for each (the test acts mid-stream). Every line, parsed, once the server ends the answer.
 */
export const rpcStreamed = (
  url: string,
  request: ReturnType<typeof rpcRequest>,
  onLine: (line: string) => Promise<void>
): Effect.Effect<ReadonlyArray<unknown>> =>
  Effect.map(
    readStreamed(
      `${url}/rpc`,
      { method: "POST", headers: { "content-type": "application/ndjson" }, body: `${JSON.stringify(request)}\n` },
      "\n",
      onLine
    ),
    (text) =>
      text
        .split("\n")
        .filter((line) => line !== "")
        .map((line): unknown => JSON.parse(line))
  )
