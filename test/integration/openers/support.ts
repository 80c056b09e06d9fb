/**
 * Helpers of the openers and matches tests: matches through the API, generation read as real
 * Server-Sent Events (frames parsed from the body stream) or as the JSON envelope, and rows.
 */
import { Deferred, Effect } from "effect"
import { expect } from "vitest"
import { sql } from "../../support/database.ts"
import { eventually } from "../../support/eventually.ts"
import { http, postJson } from "../../support/http.ts"
import type { FakeProvider } from "../../fakes/ai/index.ts"

export interface SseEvent {
  readonly event: string
  readonly data: unknown
}

export interface SseResult {
  readonly status: number
  readonly headers: Headers
  /** The events, in order (keep-alive comments left out). Empty when the answer was not a stream. */
  readonly events: ReadonlyArray<SseEvent>
  /** Each event's `id:`, in the same order. */
  readonly ids: ReadonlyArray<string | undefined>
  /** Everything read from the body, as sent. */
  readonly raw: string
  /** The parsed body when the answer was not an event stream (an error envelope). */
  readonly body: unknown
}

/** One `id: N\nevent: X\ndata: JSON` frame; undefined for a comment-only or `retry:` frame. */
export const parseFrame = (frame: string): (SseEvent & { readonly id: string | undefined }) | undefined => {
  let event = "message"
  let id: string | undefined
  const data: Array<string> = []
  for (const line of frame.split("\n")) {
    if (line.startsWith(":")) continue
    if (line.startsWith("event: ")) event = line.slice("event: ".length)
    else if (line.startsWith("data: ")) data.push(line.slice("data: ".length))
    else if (line.startsWith("id: ")) id = line.slice("id: ".length)
    else if (/^retry: \d+$/.test(line)) continue
    else if (line !== "") throw new Error(`unexpected SSE line: ${JSON.stringify(line)}`)
  }
  if (data.length === 0) return undefined
  const parsed: unknown = JSON.parse(data.join("\n"))
  return { event, data: parsed, id }
}

/**
 * POST /magic-openers/generate with `Accept: text/event-stream`, reading frames as they arrive.
 * `stopWhen` (optional) is asked after each event: true aborts the request there (a client
 * that goes away mid-stream).
 */
export const generateSse = (
  url: string,
  headers: Record<string, string>,
  payload: unknown,
  stopWhen?: (event: SseEvent, seen: ReadonlyArray<SseEvent>) => boolean
) =>
  Effect.promise(async (): Promise<SseResult> => {
    const controller = new AbortController()
    const response = await fetch(`${url}/api/v1/magic-openers/generate`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "text/event-stream", ...headers },
      body: JSON.stringify(payload),
      signal: controller.signal
    })
    if (!(response.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
      const text = await response.text()
      let body: unknown = text
      try {
        body = JSON.parse(text)
      } catch {
        // not JSON: keep the text
      }
      return { status: response.status, headers: response.headers, events: [], ids: [], raw: text, body }
    }
    const events: Array<SseEvent> = []
    const ids: Array<string | undefined> = []
    let raw = ""
    let buffer = ""
    const decoder = new TextDecoder()
    const reader = response.body?.getReader()
    if (reader === undefined) throw new Error("no body")
    try {
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        const text = decoder.decode(value, { stream: true })
        raw += text
        buffer += text
        let end = buffer.indexOf("\n\n")
        while (end !== -1) {
          const frame = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          end = buffer.indexOf("\n\n")
          const event = parseFrame(frame)
          if (event === undefined) continue
          events.push({ event: event.event, data: event.data })
          ids.push(event.id)
          if (stopWhen?.(event, events)) {
            controller.abort()
            return { status: response.status, headers: response.headers, events, ids, raw, body: undefined }
          }
        }
      }
    } finally {
      reader.releaseLock()
    }
    if (buffer !== "") throw new Error(`the stream ended inside a frame: ${JSON.stringify(buffer)}`)
    return { status: response.status, headers: response.headers, events, ids, raw, body: undefined }
  })

/** The same generation without the Accept header: the JSON envelope. */
export const generateJson = (url: string, headers: Record<string, string>, payload: unknown) =>
  postJson(`${url}/api/v1/magic-openers/generate`, JSON.stringify(payload), headers)

/** The wire form of one SSE frame, as the server must write it. */
export const frameOf = (event: SseEvent, id?: string) =>
  `${id === undefined ? "" : `id: ${id}\n`}event: ${event.event}\ndata: ${JSON.stringify(event.data)}\n\n`

/** The whole body as the server must write it: `retry:`, then each event with its id. */
export const streamOf = (result: Pick<SseResult, "events" | "ids">) =>
  RETRY_FRAME + result.events.map((event, i) => frameOf(event, result.ids[i])).join("")

/** The `retry:` every event stream starts with (a stock EventSource's reconnection delay). */
export const RETRY_FRAME = "retry: 3000\n\n"

export interface WireOpener {
  readonly id: string
  readonly matchId: string | null
  readonly batchId: string
  readonly position: number
  readonly text: string
  readonly tone: string
  readonly language: string
  readonly promptVersion: string
  readonly provider: string
  readonly model: string
  readonly feedback: string | null
  readonly dislikeReason: string | null
  readonly createdAt: string
}

export interface WireMatch {
  readonly id: string
  readonly name: string
  readonly bio: string | null
  readonly interests: ReadonlyArray<string>
  readonly notes: string | null
  readonly platform: string | null
  readonly profileUploadId: string | null
  readonly extractedProfile: unknown
  readonly createdAt: string
  readonly updatedAt: string
}

/** The openers of the `done` events, in order. */
export const doneOpeners = (events: ReadonlyArray<SseEvent>): ReadonlyArray<WireOpener> =>
  events.flatMap((event) => (event.event === "done" ? [(event.data as { opener: WireOpener }).opener] : []))

/** What an opener looks like on the wire, for `toEqual`. */
export const expectedOpener = (fields: {
  readonly matchId: string | null
  readonly position: number
  readonly text: string
  readonly provider?: string
  readonly model?: string
  readonly tone?: string
  readonly language?: string
  readonly batchId?: unknown
}) => ({
  id: expect.any(String),
  matchId: fields.matchId,
  batchId: fields.batchId ?? expect.any(String),
  position: fields.position,
  text: fields.text,
  tone: fields.tone ?? "playful",
  language: fields.language ?? "en",
  promptVersion: "openers-v1",
  provider: fields.provider ?? "gpt-4o",
  model: fields.model ?? "gpt-4o",
  feedback: null,
  dislikeReason: null,
  createdAt: expect.any(String)
})

export const createMatch = (url: string, headers: Record<string, string>, body: unknown) =>
  postJson(`${url}/api/v1/matches`, JSON.stringify(body), headers)

/** POST /matches that must succeed: the match. */
export const newMatch = (url: string, headers: Record<string, string>, body: unknown) =>
  Effect.gen(function* () {
    const res = yield* createMatch(url, headers, body)
    if (res.status !== 201) return yield* Effect.dieMessage(`match refused: ${res.status} ${res.text}`)
    return (res.body as { data: WireMatch }).data
  })

export const patchMatch = (url: string, headers: Record<string, string>, matchId: string, body: unknown) =>
  http(`${url}/api/v1/matches/${matchId}`, {
    method: "PATCH",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body)
  })

export const openerRows = (userId: string) =>
  sql(
    "SELECT id, user_id, match_id, batch_id, position, text, tone, language, prompt_version, provider, model, feedback, dislike_reason FROM magic_openers WHERE user_id = $1 ORDER BY created_at, position",
    [userId]
  )

export const matchRows = (userId: string) =>
  sql("SELECT * FROM matches WHERE user_id = $1 ORDER BY created_at, id", [userId])

export const aiCallRows = (userId: string) =>
  sql(
    "SELECT user_id, feature, provider, model, input_tokens, output_tokens, cost_micros, outcome, error_kind FROM ai_calls WHERE user_id = $1 ORDER BY created_at, id",
    [userId]
  )

/** The user's daily allowance counters (quota rows), by kind. */
export const usageRows = (userId: string) =>
  sql("SELECT kind, used FROM usage_counters WHERE user_id = $1 ORDER BY kind, day", [userId])

/** The user prompt (the last message) of a request the OpenAI fake recorded. */
export const openAiPrompt = (body: unknown): string => {
  const messages = (body as { messages?: ReadonlyArray<{ role: string; content: unknown }> }).messages ?? []
  const last = messages.at(-1)
  return typeof last?.content === "string" ? last.content : JSON.stringify(last?.content)
}

/** Polls until `done` holds (no deadline but the test's): for rows written by a finalizer. */
export { eventually }

/**
 * Waits until `fake` has seen a client abort (true; the test's timeout if it never comes). Reads
 * the counter: a `nextClientAbort()` left waiting would swallow the next test's abort, as
 * `reset()` keeps pending waiters.
 */
export const abortSeen = (fake: FakeProvider) =>
  Effect.map(
    eventually(
      Effect.sync(() => fake.abortedRequests),
      (aborted) => aborted > 0,
      "the provider to see the request aborted"
    ),
    (aborted) => aborted > 0
  )

/** What must never reach a client: Prisma's words, a constraint's name, a table's. */
export const INTERNAL_WORDS = /prisma|magic_openers|fkey|foreign key|constraint/i

/** Two opener lines on `fake`; the answer is held after the first (saved) until `released` completes. */
export const heldAfterTheFirstLine = (fake: FakeProvider, released: Deferred.Deferred<void>) =>
  fake.enqueue({
    kind: "ok",
    text: "Hi Sam?\nTacos or sushi?\n",
    chunks: ["Hi Sam?\n", "Tacos or sushi?\n"],
    holdAfter: { deltas: 1, until: Effect.runPromise(Deferred.await(released)) },
    usage: { input: 100, output: 10 }
  })
