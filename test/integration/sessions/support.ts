/** Helpers of the sessions tests: uploads of generated screenshots, sessions through the API, SSE. */
import { expect } from "@effect/vitest"
import { Clock, Deferred, Effect, type Exit, Layer, Queue } from "effect"
import type { Job } from "../../../src/core/queue/job-queue.ts"
import { SessionJobs, type SessionJob } from "../../../src/modules/sessions/sessions.jobs.ts"
import { openAiFakeConfig } from "../../support/ai-config.ts"
import { sql, TestDb } from "../../support/database.ts"
import { eventually } from "../../support/eventually.ts"
import { http, postJson } from "../../support/http.ts"
import { testServer } from "../../support/server.ts"
import { sendBytes, ticketFor } from "../../support/uploads.ts"

/** The api and the queue's consumer on the test database, every provider the OpenAI fake at `openAiUrl`, one attempt per job. */
export const sessionsServer = (openAiUrl: string) =>
  testServer({ db: TestDb(), consumer: true, config: { ...openAiFakeConfig(openAiUrl), QUEUE_ATTEMPTS: "1" } })

export interface WireSession {
  readonly id: string
  readonly status: string
  readonly phase: string | null
  readonly errorCode: string | null
  readonly transcript: ReadonlyArray<{
    position: number
    sender: string
    text: string
    time: string | null
    confidence: number
  }>
  readonly suggestions: ReadonlyArray<{ id: string; text: string; tone: string; feedback: string | null }>
  readonly costMicros: number
  readonly timings: Readonly<Record<string, number>>
}

/** Uploads `bytes` (a PNG) for a session: the upload id. */
export const uploadPng = (url: string, headers: Record<string, string>, bytes: Uint8Array) =>
  Effect.gen(function* () {
    const ticket = yield* ticketFor(url, headers, bytes)
    const sent = yield* sendBytes(ticket, bytes)
    if (sent.status !== 200) return yield* Effect.dieMessage(`upload PUT refused: ${sent.status}`)
    return ticket.uploadId
  })

export const createSession = (url: string, headers: Record<string, string>, payload: unknown) =>
  postJson(`${url}/api/v1/sessions`, JSON.stringify(payload), headers)

/** Uploads `png` and creates a session of it (202): the session as the create answered it. */
export const newSession = (url: string, headers: Record<string, string>, png: Uint8Array) =>
  Effect.gen(function* () {
    const uploadId = yield* uploadPng(url, headers, png)
    const created = yield* createSession(url, headers, { uploadIds: [uploadId] })
    if (created.status !== 202) return yield* Effect.dieMessage(`session create refused: ${created.status}`)
    return (created.body as { data: WireSession }).data
  })

export const getSession = (url: string, headers: Record<string, string>, id: string) =>
  http(`${url}/api/v1/sessions/${id}`, { headers })

/**
 * Polls GET until the session leaves queued/processing. No deadline of its own: the test's
 * timeout is the guard (an interrupted wait logs the last state it saw).
 */
export const awaitFinished = (url: string, headers: Record<string, string>, id: string) =>
  eventually(
    Effect.map(getSession(url, headers, id), (res) => (res.body as { data: WireSession }).data),
    (session) => session.status !== "queued" && session.status !== "processing",
    `session ${id} to finish`,
    200
  )

/**
 * Uploads `bytes`, creates a session from it (202) and reads its events until the terminal one:
 * the session's id and what its stream sent.
 */
export const sessionRun = (url: string, headers: Record<string, string>, bytes: Uint8Array) =>
  Effect.gen(function* () {
    const uploadId = yield* uploadPng(url, headers, bytes)
    const created = yield* createSession(url, headers, { uploadIds: [uploadId] })
    if (created.status !== 202) return yield* Effect.dieMessage(`session refused: ${created.status} ${created.text}`)
    const id = (created.body as { data: WireSession }).data.id
    const events = yield* readEvents(url, headers, id, "0")
    return { id, events }
  })

export interface SseFrame {
  readonly id: string | undefined
  readonly event: string
  readonly data: unknown
}

/**
 * Reads the events stream until it ends (a terminal event), with `Last-Event-ID` if given. No
 * deadline unless `timeoutMs` is given: the test's timeout is the guard (and aborts the request).
 */
export const readEvents = (
  url: string,
  headers: Record<string, string>,
  id: string,
  lastEventId?: string,
  timeoutMs?: number
) =>
  Effect.promise(async (interrupted) => {
    const response = await fetch(`${url}/api/v1/sessions/${id}/events`, {
      headers: {
        accept: "text/event-stream",
        ...headers,
        ...(lastEventId === undefined ? {} : { "last-event-id": lastEventId })
      },
      signal: timeoutMs === undefined ? interrupted : AbortSignal.any([interrupted, AbortSignal.timeout(timeoutMs)])
    })
    const text = await response.text()
    return { status: response.status, contentType: response.headers.get("content-type"), frames: sseFrames(text), text }
  })

/** The events of an SSE body, with their ids (comments and `retry:` left out). */
export const sseFrames = (text: string): Array<SseFrame> => {
  const frames: Array<SseFrame> = []
  for (const block of text.split("\n\n")) {
    let event = "message"
    let frameId: string | undefined
    const data: Array<string> = []
    for (const line of block.split("\n")) {
      if (line.startsWith("id: ")) frameId = line.slice(4)
      else if (line.startsWith("event: ")) event = line.slice(7)
      else if (line.startsWith("data: ")) data.push(line.slice(6))
    }
    if (data.length > 0) frames.push({ id: frameId, event, data: JSON.parse(data.join("\n")) as unknown })
  }
  return frames
}

/** The AI ledger's rows of a session, oldest first: what each call was for and what it cost. */
export const ledgerOf = (sessionId: string) =>
  sql<{ feature: string; cost: number }>(
    "SELECT feature, cost_micros AS cost FROM ai_calls WHERE session_id = $1 ORDER BY created_at",
    [sessionId]
  )

/** A wire fake's answers: the vision read of any screenshot (two messages), then three suggestions. */
export const FAKE_VISION = {
  kind: "ok" as const,
  text: JSON.stringify({
    messages: ["them: Are you free on Saturday?", "me: I might be, what's the plan?"],
    matchName: "Sam",
    app: null,
    confidence: 0.95
  })
}
export const FAKE_SUGGESTIONS = { kind: "ok" as const, text: "Coffee sounds great\nA walk by the river?\nSurprise me" }

/** The session completed as the fakes answered (FAKE_VISION, FAKE_SUGGESTIONS), each row saved once. */
export const expectSavedOnce = (url: string, headers: Record<string, string>, id: string) =>
  Effect.gen(function* () {
    const done = yield* awaitFinished(url, headers, id)
    expect(done).toMatchObject({ status: "completed", errorCode: null })
    expect(done.transcript.map((message) => [message.sender, message.text])).toEqual([
      ["them", "Are you free on Saturday?"],
      ["me", "I might be, what's the plan?"]
    ])
    expect(done.suggestions.map((suggestion) => suggestion.text)).toEqual([
      "Coffee sounds great",
      "A walk by the river?",
      "Surprise me"
    ])
    expect(yield* sql("SELECT position FROM transcript_messages WHERE session_id = $1", [id])).toHaveLength(2)
    expect(yield* sql("SELECT batch, position FROM suggestions WHERE session_id = $1 ORDER BY position", [id])).toEqual(
      [
        { batch: 0, position: 0 },
        { batch: 0, position: 1 },
        { batch: 0, position: 2 }
      ]
    )
  })

/** One attempt of a job, run by the test: its exit. */
export type DrivenAttempt = (job: Job<SessionJob>) => Effect.Effect<Exit.Exit<void, unknown>>

/**
 * `SessionJobs` whose queue runs nothing: the jobs enqueued go to `enqueued`, and the handler the
 * consumer registers to `handler`, for the test to run each attempt itself (twice, paused, …).
 */
export const drivenSessionJobs = () => {
  const handler = Effect.runSync(Deferred.make<DrivenAttempt>())
  const enqueued = Effect.runSync(Queue.unbounded<Job<SessionJob>>())
  const layer = Layer.effect(
    SessionJobs,
    Effect.map(SessionJobs, (jobs) =>
      SessionJobs.of({
        ...jobs,
        enqueue: (jobId, payload) =>
          Effect.as(Queue.offer(enqueued, { id: jobId, payload, attempt: 1, maxAttempts: 3 }), "enqueued" as const),
        consume: <E, R>(handle: (job: Job<SessionJob>) => Effect.Effect<void, E, R>) =>
          Effect.flatMap(Effect.context<R>(), (context) =>
            // On the real clock, whatever clock the test's fiber has: the pipeline paces its publishes.
            Deferred.succeed(handler, (job) =>
              Effect.exit(Effect.provide(handle(job), context).pipe(Effect.withClock(Clock.make())))
            )
          ).pipe(Effect.asVoid)
      })
    )
  ).pipe(Layer.provide(SessionJobs.layer))
  return { handler, enqueued, layer }
}
