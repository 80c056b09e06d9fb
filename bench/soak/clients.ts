/**
 * The soak's virtual users: what a phone does, against one of the api instances, every call recorded
 * (status, time, instance) so the soak can tell 5xx inside a fault's window from 5xx outside it.
 * Session progress is followed over `/ws` with reconnects and `afterSeq`; duplicates are counted
 * per follower (a progress event seq delivered twice).
 */
import WebSocket from "ws"

/** Seconds since the soak's start. */
export type Clock = () => number

export interface Reply {
  readonly atS: number
  readonly api: number
  readonly status: number
  readonly route: string
}

export interface Recorder {
  readonly clock: Clock
  readonly replies: Array<Reply>
  /** Connections closed without the client asking (a reconnect follows). */
  wsUnplanned: number
  /**
   * Redis restarts so far: a job taken up again by another process after an empty Redis numbers its
   * progress from 1 again (documented), so a seq is a duplicate only within one numbering (a restart
   * begins the next).
   */
  redisEpoch: number
  /**
   * Openers over `/ws` that got no terminal frame (`closed`, `timeout`): the request id, which api,
   * when it started, and what the connection saw, in order (no payloads).
   */
  readonly openersUnfinished: Array<{
    readonly requestId: string
    readonly api: number
    readonly startedAtS: number
    readonly how: string
    readonly trace: ReadonlyArray<string>
  }>
  /** Each event delivered twice (or a seq reused): what, when, on which connection, for the report. */
  readonly repeats: Array<{
    readonly sessionId: string
    readonly kind: "duplicate" | "seq-reused"
    readonly epoch: number
    readonly seq: number
    readonly event: string
    readonly atS: number
    readonly connection: number
    readonly firstConnection: number
    readonly firstAtS: number
  }>
}

const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null

const dataOf = (json: unknown): Readonly<Record<string, unknown>> | undefined => {
  const data = isRecord(json) ? json["data"] : undefined
  return isRecord(data) ? data : undefined
}

/** One api instance as a user sees it. */
export interface ApiClient {
  readonly index: number
  readonly url: string
}

export interface Answer {
  readonly status: number
  readonly data: Readonly<Record<string, unknown>> | undefined
}

/** A JSON call, bounded by 20 s; a failed connection or no answer in time is status 0. */
export const call = async (
  recorder: Recorder,
  api: ApiClient,
  token: string,
  method: string,
  path: string,
  route: string,
  body?: unknown
): Promise<Answer> => {
  let status = 0
  let data: Readonly<Record<string, unknown>> | undefined
  try {
    const response = await fetch(`${api.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" })
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(20_000)
    })
    status = response.status
    const text = await response.text()
    data = text === "" ? undefined : dataOf(JSON.parse(text))
  } catch {
    // status 0: no answer
  }
  recorder.replies.push({ atS: recorder.clock(), api: api.index, status, route })
  return { status, data }
}

/** Upload steps 1 and 2 (ticket, then the PUT to the pre-signed URL): the upload id, or undefined. */
export const upload = async (
  recorder: Recorder,
  api: ApiClient,
  token: string,
  bytes: Buffer
): Promise<string | undefined> => {
  const ticket = await call(recorder, api, token, "POST", "/api/v1/uploads", "POST /uploads", {
    contentType: "image/png",
    contentLength: bytes.length,
    purpose: "session"
  })
  const { uploadId, url, method, headers } = ticket.data ?? {}
  if (ticket.status !== 201 || typeof uploadId !== "string" || typeof url !== "string") return undefined
  let status = 0
  try {
    const sent = await fetch(url, {
      method: typeof method === "string" ? method : "PUT",
      headers: isRecord(headers) ? Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, String(v)])) : {},
      body: bytes,
      signal: AbortSignal.timeout(20_000)
    })
    await sent.arrayBuffer()
    status = sent.status
  } catch {
    // status 0
  }
  recorder.replies.push({ atS: recorder.clock(), api: api.index, status, route: "PUT upload" })
  return status === 200 ? uploadId : undefined
}

/**
 * A streamed POST (`Accept: text/event-stream`), read to its end or aborted after the first `delta`:
 * whether a terminal event (`final`, `failed`) arrived.
 */
export const streamPost = async (
  recorder: Recorder,
  api: ApiClient,
  token: string,
  path: string,
  route: string,
  body: unknown,
  abortAfterFirstDelta: boolean
): Promise<{ readonly status: number; readonly terminal: string | undefined; readonly aborted: boolean }> => {
  const controller = new AbortController()
  const timer = setTimeout(() => controller.abort(), 60_000)
  let status = 0
  let terminal: string | undefined
  let aborted = false
  try {
    const response = await fetch(`${api.url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify(body),
      signal: controller.signal
    })
    status = response.status
    recorder.replies.push({ atS: recorder.clock(), api: api.index, status, route })
    if (response.body === null) return { status, terminal, aborted }
    const decoder = new TextDecoder()
    let text = ""
    for await (const chunk of response.body) {
      text += decoder.decode(chunk, { stream: true })
      const kinds = [...text.matchAll(/^event: (\w+)$/gm)].map((match) => match[1])
      terminal = kinds.find((kind) => kind === "final" || kind === "failed")
      if (terminal !== undefined) break
      if (abortAfterFirstDelta && kinds.includes("delta")) {
        aborted = true
        controller.abort()
        break
      }
    }
  } catch {
    if (status === 0) recorder.replies.push({ atS: recorder.clock(), api: api.index, status, route })
  } finally {
    clearTimeout(timer)
  }
  return { status, terminal, aborted }
}

/** An authenticated `/ws` connection; `onFrame` gets every frame after `auth.ok`. */
const openSocket = (
  api: ApiClient,
  token: string,
  onReady: (ws: WebSocket) => void,
  onFrame: (frame: Readonly<Record<string, unknown>>, ws: WebSocket) => void,
  onClose: (code: number) => void
): WebSocket => {
  const ws = new WebSocket(`${api.url.replace(/^http/, "ws")}/ws`, "wingmate.v1")
  ws.on("open", () => ws.send(JSON.stringify({ type: "auth", token })))
  ws.on("message", (raw: Buffer) => {
    const frame: unknown = JSON.parse(raw.toString())
    if (!isRecord(frame)) return
    if (frame["type"] === "auth.ok") return onReady(ws)
    onFrame(frame, ws)
  })
  ws.on("error", () => undefined)
  ws.on("close", (code: number) => onClose(code))
  return ws
}

/** A frame in a follower's trace: its type, and the seq, event, status or code that says where it was. */
const traceOf = (frame: Readonly<Record<string, unknown>>): string => {
  const data = frame["data"]
  const parts = [
    String(frame["type"]),
    frame["event"],
    frame["seq"],
    isRecord(data) && frame["event"] === "snapshot" ? data["status"] : undefined,
    frame["code"]
  ]
  return parts.filter((part) => part !== undefined).join(" ")
}

export interface Followed {
  readonly sessionId: string
  readonly createdAtS: number
  /** From the start of the create request, ms. */
  firstDeltaMs: number | undefined
  endedAtS: number | undefined
  /** completed, failed, cancelled, or `timeout`. */
  end: string | undefined
  /** The client cut its own connection mid-session (then reconnected with `afterSeq`). */
  cut: boolean
  connections: number
  lastSeq: number
  /** A seq delivered twice with the same event. */
  duplicates: number
  /** A seq delivered again with a different event within one numbering (the numbering went back). */
  seqReused: number
  /** A seq delivered again after a Redis restart (a new numbering; not a duplicate). */
  seqRenumbered: number
  /** Terminal events received (more than one is a duplicate delivery too). */
  terminals: number
  /** `error` SERVICE_UNAVAILABLE frames: the server's stream of this session failed (then resubscribed). */
  streamErrors: number
  /**
   * What each connection saw, in order (`<s> #<connection> <what>`, no payloads): reported for a
   * follower that never reached its end, to tell where it waited.
   */
  readonly trace: Array<string>
}

const TERMINAL = new Set(["completed", "failed", "cancelled"])

/**
 * Follows `followed` over `/ws` to its end: subscribe with `afterSeq` (0 the first time), and on a cut
 * (planned: after `cutAfterEvents` events; or not: the server or network closed it) reconnect, to
 * `apis[n % apis.length]` in turn, with the last seq seen. Ends at a terminal event (or a snapshot in a
 * terminal state), or after `timeoutMs`.
 */
export const follow = async (
  recorder: Recorder,
  apis: ReadonlyArray<ApiClient>,
  firstApi: number,
  token: string,
  followed: Followed,
  createStartedMs: number,
  cutAfterEvents: number | undefined,
  timeoutMs: number
): Promise<void> => {
  /** Per `${redisEpoch}:${seq}`, the event delivered with it, when and on which connection. */
  const seen = new Map<string, { readonly identity: string; readonly atS: number; readonly connection: number }>()
  const deadline = performance.now() + timeoutMs
  let cutPending = cutAfterEvents
  while (followed.end === undefined) {
    const remaining = deadline - performance.now()
    if (remaining <= 0) {
      followed.end = "timeout"
      break
    }
    const api = apis[(firstApi + followed.connections) % apis.length] ?? apis[0]
    if (api === undefined) throw new Error("no api")
    followed.connections++
    const note = (what: string) =>
      followed.trace.push(`${recorder.clock().toFixed(1)} #${followed.connections} ${what}`)
    note(`connect api${api.index} afterSeq ${followed.lastSeq}`)
    await new Promise<void>((done) => {
      let planned = false
      let events = 0
      let ready = false
      const finish = (ws: WebSocket) => {
        planned = true
        clearTimeout(timer)
        ws.terminate()
        done()
      }
      const ws = openSocket(
        api,
        token,
        (socket) => {
          ready = true
          note("auth.ok")
          socket.send(JSON.stringify({ type: "subscribe", sessionId: followed.sessionId, afterSeq: followed.lastSeq }))
        },
        (frame, socket) => {
          note(traceOf(frame))
          // Not authenticated (e.g. SERVICE_UNAVAILABLE while the database is away): as the app
          // does, connect again after the pause rather than wait for the server's auth deadline.
          if (!ready && frame["type"] === "error") return finish(socket)
          // The subscription's stream failed (e.g. its database read): the frame names the session;
          // resubscribe from lastSeq.
          const details = frame["details"]
          if (
            frame["type"] === "error" &&
            frame["code"] === "SERVICE_UNAVAILABLE" &&
            isRecord(details) &&
            details["sessionId"] === followed.sessionId
          ) {
            followed.streamErrors++
            return finish(socket)
          }
          if (frame["type"] !== "session.event" || frame["sessionId"] !== followed.sessionId) return
          const event = String(frame["event"])
          const seq = typeof frame["seq"] === "number" ? frame["seq"] : undefined
          const data = frame["data"]
          if (event === "snapshot") {
            const status = isRecord(data) ? String(data["status"]) : ""
            if (seq !== undefined) followed.lastSeq = Math.max(followed.lastSeq, seq)
            if (TERMINAL.has(status)) {
              followed.end = status
              followed.endedAtS = recorder.clock()
              return finish(socket)
            }
            return
          }
          if (seq !== undefined) {
            const identity = `${event} ${JSON.stringify(data)}`
            const key = `${recorder.redisEpoch}:${seq}`
            const before = seen.get(key)
            if (before !== undefined) {
              const kind = before.identity === identity ? "duplicate" : "seq-reused"
              if (kind === "duplicate") followed.duplicates++
              else followed.seqReused++
              recorder.repeats.push({
                sessionId: followed.sessionId,
                kind,
                epoch: recorder.redisEpoch,
                seq,
                event,
                atS: recorder.clock(),
                connection: followed.connections,
                firstConnection: before.connection,
                firstAtS: before.atS
              })
            }
            if ([...seen.keys()].some((other) => other.endsWith(`:${seq}`) && other !== key)) followed.seqRenumbered++
            seen.set(key, { identity, atS: recorder.clock(), connection: followed.connections })
            followed.lastSeq = Math.max(followed.lastSeq, seq)
          }
          if (event === "delta" && followed.firstDeltaMs === undefined)
            followed.firstDeltaMs = performance.now() - createStartedMs
          if (TERMINAL.has(event)) {
            followed.terminals++
            followed.end = event
            followed.endedAtS = recorder.clock()
            return finish(socket)
          }
          events++
          if (cutPending !== undefined && events >= cutPending) {
            cutPending = undefined
            followed.cut = true
            finish(socket)
          }
        },
        (code) => {
          if (planned) return
          note(`closed ${code}`)
          recorder.wsUnplanned++
          clearTimeout(timer)
          done()
        }
      )
      const timer = setTimeout(() => {
        note("deadline")
        finish(ws)
      }, remaining)
    })
    // A phone reconnects after a short pause.
    if (followed.end === undefined) await new Promise((resolve) => setTimeout(resolve, 300))
  }
}

/**
 * Openers over `/ws` (`opener.generate`), aborted after the first `opener.delta` when `abort`:
 * how it ended (`done`, `error <code>`, `aborted`, `closed`, `timeout`).
 */
export const openersOverWs = (
  recorder: Recorder,
  api: ApiClient,
  token: string,
  requestId: string,
  abort: boolean
): Promise<string> =>
  new Promise((resolve) => {
    const startedAtS = recorder.clock()
    const trace: Array<string> = []
    const note = (what: string) => trace.push(`${recorder.clock().toFixed(1)} ${what}`)
    let ended = false
    const settle = (how: string) => {
      ended = true
      clearTimeout(timer)
      if (how === "closed" || how === "timeout") {
        recorder.openersUnfinished.push({ requestId, api: api.index, startedAtS, how, trace })
      }
      resolve(how)
    }
    const end = (how: string, ws: WebSocket) => {
      if (ended) return
      note(how)
      ws.close()
      settle(how)
    }
    note(`connect api${api.index}`)
    const ws = openSocket(
      api,
      token,
      (socket) => {
        note("auth.ok")
        socket.send(
          JSON.stringify({
            type: "opener.generate",
            requestId,
            profile: { name: "Sam", bio: "Trail runner, coffee snob, two cats", interests: ["hiking", "jazz"] },
            count: 2
          })
        )
      },
      (frame, socket) => {
        if (frame["requestId"] !== requestId && frame["type"] !== "error") return note(String(frame["type"]))
        // Deltas are many: the first of each opener says enough.
        if (frame["type"] !== "opener.delta" || !trace.at(-1)?.endsWith(`opener.delta ${String(frame["index"])}`)) {
          note(traceOf(frame) + (frame["type"] === "opener.delta" ? ` ${String(frame["index"])}` : ""))
        }
        if (frame["type"] === "opener.delta" && abort) socket.send(JSON.stringify({ type: "abort", requestId }))
        if (frame["type"] === "opener.done") end("done", socket)
        if (frame["type"] === "opener.aborted") end("aborted", socket)
        if (frame["type"] === "opener.error" || frame["type"] === "error") end(`error ${String(frame["code"])}`, socket)
      },
      (code) => {
        if (ended) return
        note(`close ${code}`)
        recorder.wsUnplanned++
        settle("closed")
      }
    )
    const timer = setTimeout(() => end("timeout", ws), 60_000)
  })
