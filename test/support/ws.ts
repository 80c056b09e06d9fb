/**
 * A real `ws` client for the gateway's tests: every frame it receives is kept in order, and a
 * test waits for the next frame matching a predicate. A wait has no deadline of its own (a guess
 * shorter than the test's timeout fails slow machines): the test runner's timeout is the guard,
 * and a wait it interrupts logs what the socket had received, for the diagnosis.
 */
import { Console, Effect } from "effect"
import WebSocket from "ws"

export interface Frame {
  readonly type: string
  readonly [key: string]: unknown
}

export interface Closed {
  readonly code: number
  readonly reason: string
}

export interface TestSocket {
  readonly ws: WebSocket
  /** Every JSON frame received so far, in order. */
  readonly frames: Array<Frame>
  readonly send: (frame: unknown) => Effect.Effect<void>
  readonly sendRaw: (data: string | Buffer, options?: { readonly binary?: boolean }) => Effect.Effect<void>
  /**
   * The first frame not yet taken matching `match`. `timeoutMs` only for a test whose subject is a
   * deadline; by default the wait lasts until the frame comes or the test's own timeout ends it.
   */
  readonly next: (match?: (frame: Frame) => boolean, options?: { readonly timeoutMs?: number }) => Effect.Effect<Frame>
  /** Resolves when the server closes the connection (no deadline by default, as `next`). */
  readonly closed: (options?: { readonly timeoutMs?: number }) => Effect.Effect<Closed>
}

const toWsUrl = (baseUrl: string, path: string) => `${baseUrl.replace(/^http/, "ws")}${path}`

/** Opens a socket (closed with the scope); fails if the handshake is refused. */
export const connect = (baseUrl: string, path = "/ws", headers: Record<string, string> = {}) =>
  Effect.acquireRelease(
    Effect.async<TestSocket, Error>((resume) => {
      const ws = new WebSocket(toWsUrl(baseUrl, path), { headers })
      const frames: Array<Frame> = []
      let taken = 0
      const waiters = new Set<() => void>()
      let closedWith: Closed | undefined
      const wake = () => {
        for (const waiter of [...waiters]) waiter()
      }
      ws.on("message", (data, isBinary) => {
        const text = isBinary ? "" : data.toString()
        const parsed: unknown = text === "" ? null : JSON.parse(text)
        if (typeof parsed === "object" && parsed !== null && "type" in parsed && typeof parsed.type === "string") {
          frames.push({ ...parsed, type: parsed.type })
        }
        wake()
      })
      ws.on("close", (code, reason) => {
        closedWith = { code, reason: reason.toString() }
        wake()
      })
      ws.on("unexpected-response", (_request, response) => {
        resume(Effect.fail(new Error(`handshake refused: ${response.statusCode}`)))
      })
      ws.on("error", (error) => resume(Effect.fail(error)))
      ws.on("open", () => {
        const seen = () => `frames: ${JSON.stringify(frames.slice(-10))}; closed: ${JSON.stringify(closedWith)}`
        const wait = <A>(check: () => A | undefined, what: string, timeoutMs: number | undefined) =>
          Effect.async<A>((done) => {
            const attempt = () => {
              const found = check()
              if (found === undefined) return false
              cleanup()
              done(Effect.succeed(found))
              return true
            }
            const timer =
              timeoutMs === undefined
                ? undefined
                : setTimeout(() => {
                    cleanup()
                    done(Effect.dieMessage(`timed out waiting for ${what}; ${seen()}`))
                  }, timeoutMs)
            const cleanup = () => {
              clearTimeout(timer)
              waiters.delete(listener)
            }
            const listener = () => {
              attempt()
            }
            if (!attempt()) waiters.add(listener)
            return Effect.sync(cleanup)
          }).pipe(
            // The test's timeout interrupts the wait: say what it was waiting for and what came.
            Effect.onInterrupt(() => Console.error(`interrupted while waiting for ${what}; ${seen()}`))
          )
        resume(
          Effect.succeed({
            ws,
            frames,
            send: (frame) => Effect.sync(() => ws.send(JSON.stringify(frame))),
            sendRaw: (data, options) => Effect.sync(() => ws.send(data, { binary: options?.binary ?? false })),
            next: (match = () => true, options) =>
              wait(
                () => {
                  for (let i = taken; i < frames.length; i++) {
                    const frame = frames[i]
                    if (frame !== undefined && match(frame)) {
                      taken = i + 1
                      return frame
                    }
                  }
                  return undefined
                },
                "a frame",
                options?.timeoutMs
              ),
            closed: (options) => wait(() => closedWith, "the close", options?.timeoutMs)
          })
        )
      })
    }),
    (socket) => Effect.sync(() => socket.ws.terminate())
  )

/** Opens a socket and authenticates; fails the test unless `auth.ok` comes back. */
export const connectAs = (baseUrl: string, token: string) =>
  Effect.gen(function* () {
    const socket = yield* connect(baseUrl)
    yield* socket.send({ type: "auth", token })
    const reply = yield* socket.next()
    if (reply.type !== "auth.ok") return yield* Effect.dieMessage(`auth refused: ${JSON.stringify(reply)}`)
    return socket
  })

export const ofType =
  (type: string) =>
  (frame: Frame): boolean =>
    frame.type === type

const TERMINAL_EVENTS = new Set(["completed", "failed", "cancelled"])

/** The `session.event` frames of `sessionId` on `socket`, up to and including a terminal one. */
export const followToEnd = (socket: TestSocket, sessionId: string, options?: { readonly timeoutMs?: number }) =>
  Effect.gen(function* () {
    const events: Array<Frame> = []
    for (;;) {
      const frame = yield* socket.next((f) => f.type === "session.event" && f["sessionId"] === sessionId, options)
      events.push(frame)
      if (TERMINAL_EVENTS.has(String(frame["event"]))) return events
    }
  })
