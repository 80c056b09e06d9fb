/**
 * The sessions' event streams end cleanly for a stock EventSource (follow and regenerate: it stops
 * after the terminal event, its reconnect answered 204), a reconnect of a regeneration never
 * writes another batch, and text streamed for a suggestion that is then dropped is retracted with
 * `blocked` (SSE and RPC; the follow stream too). The AI chain points at a wire fake of OpenAI
 * (vision, then the suggestions' lines as scripted).
 */
import { expect, layer } from "@effect/vitest"
import { Chunk, Effect, Stream } from "effect"
import { afterAll, beforeEach } from "vitest"
import { WingmateRpcClient } from "../../../src/client/rpc-client.ts"
import { SESSION_STREAM_EVENTS } from "../../../src/domain/sessions.ts"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { sql } from "../../support/database.ts"
import { runEventSource } from "../../support/eventsource.ts"
import { baseUrl } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import {
  awaitFinished,
  createSession,
  FAKE_SUGGESTIONS,
  FAKE_VISION,
  sseFrames,
  uploadPng,
  type WireSession,
  sessionsServer
} from "./support.ts"

const openai = await startFakeOpenAI()
afterAll(() => openai.close())
beforeEach(() => openai.reset())

/** A regeneration's lines: two repeat batch 0 ("Coffee sounds great", "A walk by the river?"), one is too long. */
const REGENERATION = {
  kind: "ok" as const,
  text: "",
  chunks: [
    "Coffee sounds",
    " great\nA brand new line\n",
    "A walk by the river?\n",
    `${"x".repeat(301)}\n`,
    "One more idea\nAnother idea\n"
  ]
}
const regeneration = () => {
  openai.enqueue({ ...REGENERATION, text: REGENERATION.chunks.join("") })
}

// Every event the follow stream documents (a listener for each, as an app registers them).
const FOLLOW_EVENTS = SESSION_STREAM_EVENTS.map((doc) => doc.event)
const REGENERATE_EVENTS = ["delta", "suggestion", "blocked", "final", "failed"]

const upload = (url: string, headers: Record<string, string>) =>
  Effect.flatMap(
    Effect.promise(() => tinyImage("png", 64, 48)),
    (bytes) => uploadPng(url, headers, bytes)
  )

/** Creates a session from a fresh upload and follows its events with a stock EventSource to the end. */
const createAndFollow = (url: string, headers: Record<string, string>) =>
  Effect.gen(function* () {
    const uploadId = yield* upload(url, headers)
    const created = yield* createSession(url, headers, { uploadIds: [uploadId] })
    const id = (created.body as { data: WireSession }).data.id
    const run = yield* runEventSource(`${url}/api/v1/sessions/${id}/events`, { headers, events: FOLLOW_EVENTS })
    return { id, run }
  })

const completedSession = (url: string, headers: Record<string, string>) =>
  Effect.gen(function* () {
    openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS)
    const uploadId = yield* upload(url, headers)
    const created = yield* createSession(url, headers, { uploadIds: [uploadId] })
    expect(created.status).toBe(202)
    const done = yield* awaitFinished(url, headers, (created.body as { data: WireSession }).data.id)
    expect(done.status).toBe("completed")
    return done
  })

/** What a client shows from the events: deltas appended, a `blocked` index emptied, a suggestion's text as saved. */
const shown = (events: ReadonlyArray<{ readonly event: string; readonly data: unknown }>) => {
  const texts: Array<string> = []
  for (const { event, data } of events) {
    const item = data as { index: number; text?: string; suggestion?: { text: string } }
    if (event === "delta") texts[item.index] = (texts[item.index] ?? "") + (item.text ?? "")
    if (event === "blocked") texts[item.index] = ""
    if (event === "suggestion") texts[item.index] = item.suggestion?.text ?? ""
  }
  return texts
}

const lastBatch = (id: string) =>
  Effect.map(
    sql<{ last_batch: number }>("SELECT last_batch FROM sessions WHERE id = $1", [id]),
    ([row]) => row?.last_batch
  )

layer(sessionsServer(openai.url), { timeout: 120_000, excludeTestServices: true })(
  "sessions: event streams end cleanly; dropped suggestions are retracted",
  (it) => {
    it.effect("a stock EventSource following a session stops after completed: its reconnect gets 204", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        // Batch 0 repeats its first line: streamed, then dropped as a duplicate.
        openai.enqueue(FAKE_VISION, {
          kind: "ok",
          text: "Coffee sounds great\nCoffee sounds great\nA walk by the river?\nSurprise me\n"
        })
        const { id, run } = yield* createAndFollow(url, alice.headers)
        const last = run.events.at(-1)
        expect(last?.event).toBe("completed")
        expect(run.requests).toEqual([
          { lastEventId: undefined, status: 200 },
          { lastEventId: last?.id, status: 204 }
        ])
        expect(run.closedWith).toBe(204)
        const done = yield* awaitFinished(url, alice.headers, id)
        const [cost] = yield* sql<{ cost_micros: number }>("SELECT cost_micros FROM sessions WHERE id = $1", [id])
        expect(last?.data).toEqual({
          suggestions: done.suggestions,
          costMicros: cost?.cost_micros,
          timings: done.timings
        })
        expect(done.suggestions.map((suggestion) => suggestion.text)).toEqual([
          "Coffee sounds great",
          "A walk by the river?",
          "Surprise me"
        ])
        // The repeat was retracted: what a client shows is what was saved.
        expect(run.events.filter((event) => event.event === "blocked").map((event) => event.data)).toEqual([
          { index: 1, reason: "duplicate" }
        ])
        expect(shown(run.events)).toEqual(done.suggestions.map((suggestion) => suggestion.text))
        // The screenshot's lines came as they were read, before the transcript that replaced them.
        const kinds = run.events.map((event) => event.event)
        expect(kinds.lastIndexOf("lines")).toBeLessThan(kinds.indexOf("transcript"))
        expect(
          run.events
            .filter((event) => event.event === "lines")
            .flatMap((event) => (event.data as { messages: ReadonlyArray<unknown> }).messages)
        ).toEqual(done.transcript.map(({ position, sender, text, time }) => ({ position, sender, text, time })))
      })
    )

    it.effect(
      "a stream paced like a model (a delta per 4 characters): the follower gets every character in order",
      () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const { alice } = yield* twoUsers(url)
          const text = "Saturday morning works for me!\nDeal, I will bring the coffee\nMeet at the trailhead at nine?\n"
          // Deltas arrive faster than the publisher's interval: they are batched, never dropped or reordered.
          openai.enqueue(FAKE_VISION, { kind: "ok", text, chunks: text.match(/[^]{1,4}/g) ?? [], chunkDelayMs: 2 })
          const { id, run } = yield* createAndFollow(url, alice.headers)
          expect(run.events.at(-1)?.event).toBe("completed")
          const streamed: Array<string> = []
          for (const { event, data } of run.events) {
            const delta = data as { index: number; text: string }
            if (event === "delta") streamed[delta.index] = (streamed[delta.index] ?? "") + delta.text
          }
          const done = yield* awaitFinished(url, alice.headers, id)
          expect(streamed).toEqual([
            "Saturday morning works for me!",
            "Deal, I will bring the coffee",
            "Meet at the trailhead at nine?"
          ])
          expect(done.suggestions.map((suggestion) => suggestion.text)).toEqual(streamed)
        })
    )

    it.effect("a regeneration: dropped lines retracted with blocked (SSE); a stock EventSource stops after final", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const done = yield* completedSession(url, alice.headers)
        regeneration()
        const run = yield* runEventSource(`${url}/api/v1/sessions/${done.id}/suggestions`, {
          headers: alice.headers,
          events: REGENERATE_EVENTS,
          post: { instruction: "Shorter" }
        })
        const last = run.events.at(-1)
        expect(last?.event).toBe("final")
        expect(run.requests).toEqual([
          { lastEventId: undefined, status: 200 },
          { lastEventId: last?.id, status: 204 }
        ])
        expect(run.events.map((event) => event.id)).toEqual(run.events.map((_, n) => `1:${n + 1}`))

        // The repeats of batch 0 and the line too long streamed, then were dropped: each retracted.
        const blocked = run.events.filter((event) => event.event === "blocked").map((event) => event.data)
        expect(blocked).toEqual([
          { index: 0, reason: "duplicate" },
          { index: 1, reason: "duplicate" },
          { index: 1, reason: "too_long" }
        ])
        // What the client shows is exactly what was saved, and final says so too.
        const saved = (last?.data as { batch: number; suggestions: ReadonlyArray<{ text: string }> }).suggestions
        expect(shown(run.events)).toEqual(saved.map((suggestion) => suggestion.text))
        const rows = yield* sql<{ text: string }>(
          "SELECT text FROM suggestions WHERE session_id = $1 AND batch = 1 ORDER BY position",
          [done.id]
        )
        expect(rows.map((row) => row.text)).toEqual(["A brand new line", "One more idea", "Another idea"])
        expect(saved.map((suggestion) => suggestion.text)).toEqual(rows.map((row) => row.text))
        expect(yield* lastBatch(done.id)).toBe(1)
      })
    )

    it.effect("a regeneration's reconnect (Last-Event-ID) answers 204: no batch written, nothing counted", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const done = yield* completedSession(url, alice.headers)
        regeneration()
        const path = `${url}/api/v1/sessions/${done.id}/suggestions`
        const post = (headers: Record<string, string>) =>
          Effect.promise(async () => {
            const response = await fetch(path, {
              method: "POST",
              headers: { ...headers, "content-type": "application/json", accept: "text/event-stream" },
              body: "{}"
            })
            return { status: response.status, text: await response.text() }
          })
        const first = yield* post(alice.headers)
        expect(first.status).toBe(200)
        expect(first.text.startsWith("retry: 3000\n\n")).toBe(true)
        const lastId = sseFrames(first.text).at(-1)?.id ?? ""
        expect(lastId).toBe(`1:${sseFrames(first.text).length}`)
        for (const [headers, id] of [
          [alice.headers, lastId],
          [alice.headers, "1:1"],
          [bob.headers, lastId]
        ] as const) {
          const again = yield* post({ ...headers, "last-event-id": id })
          expect(again).toEqual({ status: 204, text: "" })
        }
        expect(yield* lastBatch(done.id)).toBe(1)
        const counted = yield* sql<{ used: number }>(
          "SELECT used FROM usage_counters WHERE user_id = $1 AND kind = 'regenerations'",
          [alice.id]
        )
        expect(counted).toEqual([{ used: 1 }])
      })
    )

    it.effect("RPC sessions.regenerate retracts dropped lines with Blocked too", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const done = yield* completedSession(url, alice.headers)
        regeneration()
        const events = yield* Effect.flatMap(WingmateRpcClient, (rpc) =>
          Effect.map(Stream.runCollect(rpc.sessions.regenerate({ sessionId: done.id })), (chunk) =>
            Chunk.toReadonlyArray(chunk)
          )
        ).pipe(Effect.provide(WingmateRpcClient.http({ baseUrl: url, token: alice.token })))
        expect(events.filter((event) => event._tag === "Blocked")).toEqual([
          { _tag: "Blocked", index: 0, reason: "duplicate" },
          { _tag: "Blocked", index: 1, reason: "duplicate" },
          { _tag: "Blocked", index: 1, reason: "too_long" }
        ])
        expect(events.at(-1)?._tag).toBe("Final")
      })
    )
  }
)
