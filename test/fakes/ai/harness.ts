/**
 * The shared harness of the wire-level LLM provider fakes: a real node:http server on 127.0.0.1 (port 0)
 * that records every request, plays queued behaviors, and tracks client disconnects. Each provider file
 * supplies only its protocol (routes, JSON shapes, SSE framing, error shape) as a `ProviderProtocol`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"

export type FakeProviderName = "openai" | "anthropic" | "gemini"

export type Behavior =
  | {
      readonly kind: "ok"
      readonly text: string
      /** The text for this request instead of `text` (e.g. a transcript for vision reads, lines for streams). */
      readonly textFor?: (request: { readonly body: unknown; readonly stream: boolean }) => string
      readonly chunks?: ReadonlyArray<string>
      readonly usage?: { readonly input: number; readonly output: number }
      readonly delayMs?: number
      readonly chunkDelayMs?: number
      /** Called when the request arrives (a test's event: the call is in flight). */
      readonly arrived?: () => void
      /** The answer waits for this (a call held in flight until the test releases it). */
      readonly until?: Promise<unknown>
      /** Streamed: after `deltas` deltas, the rest waits for `until` (an answer held half-written). */
      readonly holdAfter?: { readonly deltas: number; readonly until: Promise<unknown> }
    }
  | { readonly kind: "status"; readonly status: number; readonly message?: string; readonly delayMs?: number }
  | { readonly kind: "malformed"; readonly delayMs?: number }
  | { readonly kind: "hang" }
  | { readonly kind: "cut"; readonly afterChunks: number; readonly chunks: ReadonlyArray<string> }

export interface RecordedRequest {
  readonly path: string
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: unknown
  readonly stream: boolean
  /** The request carries an image: a screenshot read (streamed or not), not a text call. */
  readonly image: boolean
}

export interface FakeProvider {
  readonly name: FakeProviderName
  /** http://127.0.0.1:PORT (no trailing slash) */
  readonly url: string
  /** Behaviors are consumed in order, one per request; when the queue is empty, `fallback` is used. */
  enqueue(...behaviors: ReadonlyArray<Behavior>): void
  /** default: { kind: "ok", text: "fake answer" } */
  setFallback(behavior: Behavior): void
  readonly requests: ReadonlyArray<RecordedRequest>
  /** Resolves when a request's connection was closed by the client before the fake finished answering (for cancellation tests). */
  nextClientAbort(): Promise<RecordedRequest>
  readonly abortedRequests: number
  /** clears queue, fallback, records */
  reset(): void
  close(): Promise<void>
}

// ---------------------------------------------------------------------------------------------------------------
// What a provider file implements

/** A request routed to a model endpoint. */
export interface RouteMatch {
  /** The model named in the path (Gemini); the body's `model` is read by the protocol itself. */
  readonly model: string | undefined
  /** The path itself asks for a stream (Gemini `:streamGenerateContent`). */
  readonly streamByPath: boolean
}

/** One request as the protocol sees it. */
export interface Call {
  readonly route: RouteMatch
  readonly body: unknown
  readonly stream: boolean
  /** 1, 2, 3… per fake: used for deterministic ids. */
  readonly seq: number
}

/** What to answer: the whole text, its stream deltas, and the token counts. */
export interface Answer {
  readonly text: string
  readonly chunks: ReadonlyArray<string>
  readonly usage: { readonly input: number; readonly output: number }
}

/** SSE frames (each already framed, e.g. `data: {...}\n\n`): `deltas` carry one text delta each. */
export interface StreamPlan {
  readonly head: ReadonlyArray<string>
  readonly deltas: ReadonlyArray<string>
  readonly tail: ReadonlyArray<string>
}

export interface ErrorReply {
  readonly body: unknown
  readonly headers: Readonly<Record<string, string>>
}

export interface ProviderProtocol {
  readonly name: FakeProviderName
  /** The request carries an image (a vision call: its prefill is slower). */
  hasImage(body: unknown): boolean
  /** The request turns the model's hidden thinking off (Gemini 2.5 `thinkingBudget: 0`); others never think here. */
  thinksBeforeAnswering(body: unknown): boolean
  /** undefined: not an endpoint of this fake (answered 404 in the provider's error shape). */
  route(method: string, url: URL): RouteMatch | undefined
  isStream(route: RouteMatch, body: unknown): boolean
  /** Characters of prompt text in the request body (for the default usage). */
  promptChars(body: unknown): number
  /** Headers sent with every answer (request ids). */
  headers(seq: number): Readonly<Record<string, string>>
  error(status: number, message: string | undefined, seq: number): ErrorReply
  /** The non-streamed JSON answer. */
  complete(call: Call, answer: Answer): unknown
  /** `finished: false` for `cut`: head and deltas only, and no delta may carry end-of-answer data. */
  stream(call: Call, answer: Answer, finished: boolean): StreamPlan
  /** One SSE frame whose data is not JSON. */
  readonly malformedFrame: string
}

// ---------------------------------------------------------------------------------------------------------------
// JSON helpers for the protocols (request bodies are `unknown`)

export const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

export const field = (value: unknown, key: string): unknown => (isRecord(value) ? value[key] : undefined)

export const stringField = (value: unknown, key: string): string | undefined => {
  const found = field(value, key)
  return typeof found === "string" ? found : undefined
}

export const arrayField = (value: unknown, key: string): ReadonlyArray<unknown> => {
  const found = field(value, key)
  return Array.isArray(found) ? found : []
}

/** Characters of text in a prompt value: strings, `text` fields, and nested `content` / `parts`. */
export const textLength = (value: unknown): number => {
  if (typeof value === "string") return value.length
  if (Array.isArray(value)) {
    const items: ReadonlyArray<unknown> = value
    return items.reduce<number>((total, item) => total + textLength(item), 0)
  }
  if (isRecord(value)) {
    const text = value["text"]
    if (typeof text === "string") return text.length
    return textLength(value["content"]) + textLength(value["parts"])
  }
  return 0
}

/** `text` in pieces of `size` code points. */
const piecesOf = (text: string, size: number): ReadonlyArray<string> => {
  const points = Array.from(text)
  const pieces: Array<string> = []
  for (let start = 0; start < points.length; start += size) pieces.push(points.slice(start, start + size).join(""))
  return pieces
}

/** The default stream deltas: the text split into ~3 pieces (by code point). */
export const splitText = (text: string): ReadonlyArray<string> =>
  piecesOf(text, Math.max(1, Math.ceil(Array.from(text).length / 3)))

/** Default token counts: a quarter of the characters, rounded up. */
export const estimateTokens = (chars: number): number => Math.ceil(chars / 4)

export const nowSeconds = (): number => Math.floor(Date.now() / 1000)

// ---------------------------------------------------------------------------------------------------------------
// Latency profiles (opt-in: without one a fake answers at once, as every test wants)

/** How fast a model answers, from published medians (see bench/README.md, "Latency with real provider profiles"). */
export interface LatencyProfile {
  readonly model: string
  /** Request sent → first token, with a text-only prompt. */
  readonly ttftMs: number
  /** Request sent → first token, with one screenshot in the prompt (the image's prefill). */
  readonly visionTtftMs: number
  /** Output tokens per second once the answer flows (a token ≈ 4 characters). */
  readonly tokensPerSecond: number
  /** Tokens per SSE delta, as the provider groups them. */
  readonly tokensPerDelta: number
  /** Hidden thinking tokens produced before the first visible one, when the request leaves thinking on. */
  readonly thinkingTokens: number
}

export interface FakeOptions {
  readonly latency?: LatencyProfile
  /** Waits `ms` (false: the client went away). Default: a timer; tests pass one that records and returns at once. */
  readonly wait?: (ms: number, signal: AbortSignal) => Promise<boolean>
  /** Told how each paced answer is paced (a bench separates the provider's time from the app's with it). */
  readonly onPaced?: (paced: Paced) => void
}

/** One paced answer: what it was, and when its first and last delta were due from its arrival. */
export interface Paced {
  readonly image: boolean
  readonly thinking: boolean
  readonly stream: boolean
  readonly outputTokens: number
  readonly firstTokenMs: number
  readonly doneMs: number
}

/**
 * The ms at which each delta is due, from the request's arrival: the first delta at the time to first
 * token (as Artificial Analysis measures it: the first chunk received), each later one when its last
 * token is out at `tokensPerSecond`. A non-streamed answer is due with the last delta (`doneMs`).
 */
export const paceOf = (
  profile: LatencyProfile,
  call: { readonly image: boolean; readonly thinking: boolean },
  chunks: ReadonlyArray<string>
): { readonly firstTokenMs: number; readonly deltaAtMs: ReadonlyArray<number>; readonly doneMs: number } => {
  const msPerToken = 1000 / profile.tokensPerSecond
  const firstTokenMs =
    (call.image ? profile.visionTtftMs : profile.ttftMs) + (call.thinking ? profile.thinkingTokens * msPerToken : 0)
  const firstChunkTokens = estimateTokens(chunks[0]?.length ?? 0)
  let chars = 0
  const deltaAtMs = chunks.map((chunk) => {
    chars += chunk.length
    return firstTokenMs + (estimateTokens(chars) - firstChunkTokens) * msPerToken
  })
  return { firstTokenMs, deltaAtMs, doneMs: deltaAtMs.at(-1) ?? firstTokenMs }
}

/** `text` cut into deltas of `tokensPerDelta` tokens (4 characters each), by code point. */
export const splitTokens = (text: string, tokensPerDelta: number): ReadonlyArray<string> =>
  piecesOf(text, Math.max(1, Math.round(tokensPerDelta * 4)))

// ---------------------------------------------------------------------------------------------------------------
// The server

const DEFAULT_FALLBACK: Behavior = { kind: "ok", text: "fake answer" }
/** After the last delta of a `cut`, the socket is destroyed this much later so the client reads the deltas first. */
const CUT_GRACE_MS = 30
const MALFORMED_JSON = '{"id": "fake", "this is": not valid JSON'

const sleep = (ms: number, signal: AbortSignal): Promise<boolean> =>
  new Promise((resolve) => {
    if (signal.aborted) return resolve(false)
    if (ms <= 0) return resolve(true)
    const onAbort = () => {
      clearTimeout(timer)
      resolve(false)
    }
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort)
      resolve(true)
    }, ms)
    signal.addEventListener("abort", onAbort, { once: true })
  })

const write = (res: ServerResponse, data: string, signal: AbortSignal): Promise<boolean> =>
  new Promise((resolve) => {
    if (signal.aborted || res.destroyed) return resolve(false)
    const onAbort = () => resolve(false)
    signal.addEventListener("abort", onAbort, { once: true })
    res.write(data, (error) => {
      signal.removeEventListener("abort", onAbort)
      resolve(error === null || error === undefined)
    })
  })

const readBody = (req: IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const parts: Array<Buffer> = []
    req.on("data", (part: Buffer) => parts.push(part))
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")))
    req.on("error", reject)
  })

const sendJson = (
  res: ServerResponse,
  status: number,
  headers: Readonly<Record<string, string>>,
  body: string
): void => {
  res.writeHead(status, { ...headers, "content-type": "application/json; charset=utf-8" })
  res.end(body)
}

const SSE_HEADERS = { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" }

export const startFake = async (protocol: ProviderProtocol, options: FakeOptions = {}): Promise<FakeProvider> => {
  const { latency } = options
  const wait = options.wait ?? sleep
  let queue: Array<Behavior> = []
  let fallback: Behavior = DEFAULT_FALLBACK
  let requests: Array<RecordedRequest> = []
  let aborted = 0
  let undeliveredAborts: Array<RecordedRequest> = []
  const abortWaiters: Array<(request: RecordedRequest) => void> = []
  let seq = 0
  let closing = false

  const noteAbort = (request: RecordedRequest): void => {
    aborted += 1
    const waiter = abortWaiters.shift()
    if (waiter) waiter(request)
    else undeliveredAborts.push(request)
  }

  const answerFor = (call: Call, text: string, chunks: ReadonlyArray<string> | undefined, usage?: Answer["usage"]) => ({
    text,
    chunks: chunks ?? (latency === undefined ? splitText(text) : splitTokens(text, latency.tokensPerDelta)),
    usage: usage ?? { input: estimateTokens(protocol.promptChars(call.body)), output: estimateTokens(text.length) }
  })

  const play = async (
    req: IncomingMessage,
    res: ServerResponse,
    call: Call,
    behavior: Behavior,
    signal: AbortSignal,
    finish: () => void
  ): Promise<void> => {
    const base = protocol.headers(call.seq)
    switch (behavior.kind) {
      case "hang":
        return
      case "status": {
        if (!(await sleep(behavior.delayMs ?? 0, signal))) return
        const reply = protocol.error(behavior.status, behavior.message, call.seq)
        finish()
        sendJson(res, behavior.status, { ...base, ...reply.headers }, JSON.stringify(reply.body))
        return
      }
      case "malformed": {
        if (!(await sleep(behavior.delayMs ?? 0, signal))) return
        if (call.stream) {
          res.writeHead(200, { ...base, ...SSE_HEADERS })
          if (!(await write(res, protocol.malformedFrame, signal))) return
          finish()
          res.end()
        } else {
          finish()
          sendJson(res, 200, base, MALFORMED_JSON)
        }
        return
      }
      case "cut": {
        if (!call.stream) {
          finish()
          req.socket.destroy()
          return
        }
        const answer = answerFor(call, behavior.chunks.join(""), behavior.chunks)
        const plan = protocol.stream(call, answer, false)
        res.writeHead(200, { ...base, ...SSE_HEADERS })
        res.flushHeaders()
        for (const frame of [...plan.head, ...plan.deltas.slice(0, Math.max(0, behavior.afterChunks))]) {
          if (!(await write(res, frame, signal))) return
        }
        if (!(await sleep(CUT_GRACE_MS, signal))) return
        finish()
        req.socket.destroy()
        return
      }
      case "ok": {
        behavior.arrived?.()
        if (behavior.until !== undefined) await behavior.until
        if (!(await sleep(behavior.delayMs ?? 0, signal))) return
        const text = behavior.textFor?.({ body: call.body, stream: call.stream }) ?? behavior.text
        const answer = answerFor(call, text, behavior.chunks, behavior.usage)
        // With a profile, every wait is measured from here: delta i goes out at `pace.deltaAtMs[i]`.
        const kind = { image: protocol.hasImage(call.body), thinking: protocol.thinksBeforeAnswering(call.body) }
        const pace = latency === undefined ? undefined : paceOf(latency, kind, answer.chunks)
        if (pace !== undefined) {
          options.onPaced?.({
            ...kind,
            stream: call.stream,
            outputTokens: estimateTokens(text.length),
            firstTokenMs: pace.firstTokenMs,
            doneMs: pace.doneMs
          })
        }
        let waited = 0
        const until = async (atMs: number) => {
          const ms = atMs - waited
          waited = Math.max(waited, atMs)
          return wait(ms, signal)
        }
        if (!call.stream) {
          if (pace !== undefined && !(await until(pace.doneMs))) return
          finish()
          sendJson(res, 200, base, JSON.stringify(protocol.complete(call, answer)))
          return
        }
        const plan = protocol.stream(call, answer, true)
        res.writeHead(200, { ...base, ...SSE_HEADERS })
        res.flushHeaders()
        for (const frame of plan.head) if (!(await write(res, frame, signal))) return
        for (const [index, frame] of plan.deltas.entries()) {
          const due = pace?.deltaAtMs[index]
          if (due !== undefined) {
            if (!(await until(due))) return
          } else if (index > 0 && !(await sleep(behavior.chunkDelayMs ?? 0, signal))) return
          if (!(await write(res, frame, signal))) return
          if (index + 1 === behavior.holdAfter?.deltas) await behavior.holdAfter.until
        }
        for (const frame of plan.tail) if (!(await write(res, frame, signal))) return
        finish()
        res.end()
        return
      }
    }
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1")
    const raw = await readBody(req)
    const thisSeq = (seq += 1)
    const headers: Record<string, string | string[] | undefined> = { ...req.headers }
    const path = req.url ?? "/"
    const route = protocol.route(req.method ?? "GET", url)
    let body: unknown = raw === "" ? undefined : raw
    let parsed = raw === ""
    try {
      if (raw !== "") {
        body = JSON.parse(raw)
        parsed = true
      }
    } catch {
      // kept as text
    }
    if (!route || !parsed) {
      requests.push({ path, headers, body, stream: false, image: false })
      const status = route ? 400 : 404
      const message = route
        ? "The request body is not valid JSON."
        : `No such endpoint: ${req.method ?? "GET"} ${url.pathname}`
      const reply = protocol.error(status, message, thisSeq)
      sendJson(res, status, { ...protocol.headers(thisSeq), ...reply.headers }, JSON.stringify(reply.body))
      return
    }
    const stream = protocol.isStream(route, body)
    const recorded: RecordedRequest = { path, headers, body, stream, image: protocol.hasImage(body) }
    requests.push(recorded)
    const behavior = queue.shift() ?? fallback

    const controller = new AbortController()
    let finished = false
    res.on("close", () => {
      if (!finished && !closing) noteAbort(recorded)
      finished = true
      controller.abort()
    })
    await play(req, res, { route, body, stream, seq: thisSeq }, behavior, controller.signal, () => {
      finished = true
    })
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(500, { "content-type": "text/plain" })
        res.end(`fake ${protocol.name} failed: ${String(error)}`)
      }
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject)
      resolve()
    })
  })
  const address = server.address()
  if (address === null || typeof address === "string") throw new Error(`fake ${protocol.name}: no TCP address`)
  const url = `http://127.0.0.1:${address.port}`

  return {
    name: protocol.name,
    url,
    enqueue: (...behaviors) => {
      queue.push(...behaviors)
    },
    setFallback: (behavior) => {
      fallback = behavior
    },
    get requests() {
      return [...requests]
    },
    nextClientAbort: () => {
      const ready = undeliveredAborts.shift()
      if (ready) return Promise.resolve(ready)
      return new Promise<RecordedRequest>((resolve) => abortWaiters.push(resolve))
    },
    get abortedRequests() {
      return aborted
    },
    reset: () => {
      queue = []
      fallback = DEFAULT_FALLBACK
      requests = []
      aborted = 0
      undeliveredAborts = []
    },
    close: () => {
      closing = true
      return new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()))
        server.closeAllConnections()
      })
    }
  }
}
