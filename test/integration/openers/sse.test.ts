/**
 * The openers event stream ends cleanly for a stock EventSource: `retry:` first, an id
 * `<batchId>:<n>` on every event, the response ends after `final`, and the reconnect that follows
 * (any `Last-Event-ID`) answers 204 without generating or counting again, whoever's batch it names.
 * The local provider answers (no keys configured).
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { TestDb } from "../../support/database.ts"
import { runEventSource } from "../../support/eventsource.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { doneOpeners, generateSse, openerRows, RETRY_FRAME, usageRows } from "./support.ts"

const EVENTS = ["delta", "done", "blocked", "final", "failed"]

/** Today's counted generations (the other kinds left out). */
const generations = (userId: string) =>
  Effect.map(usageRows(userId), (rows) => rows.filter((row) => row["kind"] === "openers"))

layer(testServer({ db: TestDb() }), { timeout: 60_000 })("magic openers: the event stream ends cleanly", (it) => {
  it.effect("a stock EventSource stops after final: its reconnect gets 204, nothing generated again", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const run = yield* runEventSource(`${url}/api/v1/magic-openers/generate`, {
        headers: alice.headers,
        events: EVENTS,
        post: { profile: { name: "Sam", bio: "Climber" }, count: 2 }
      })
      // One generation, then the reconnect carrying the last id, told to stop.
      const last = run.events.at(-1)
      expect(last?.event).toBe("final")
      const batchId = (last?.data as { batchId: string }).batchId
      expect(run.events.map((event) => event.id)).toEqual(run.events.map((_, n) => `${batchId}:${n + 1}`))
      expect(run.requests).toEqual([
        { lastEventId: undefined, status: 200 },
        { lastEventId: last?.id, status: 204 }
      ])
      expect(run.closedWith).toBe(204)
      // final carries the summary: the openers saved, as the done events gave them.
      const saved = doneOpeners(run.events)
      expect(saved).toHaveLength(2)
      expect((last?.data as { openers: unknown }).openers).toEqual(saved)
      expect(yield* openerRows(alice.id)).toHaveLength(2)
      expect(yield* generations(alice.id)).toEqual([{ kind: "openers", used: 1 }])
    })
  )

  it.effect("the raw stream: retry first, then framed events; a reconnect with any id is 204 with no body", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice, bob } = yield* twoUsers(url)
      const res = yield* generateSse(url, alice.headers, { profile: { name: "Sam" }, count: 1 })
      expect(res.status).toBe(200)
      expect(res.raw.startsWith(RETRY_FRAME)).toBe(true)
      expect(res.events.map((event) => event.event).at(-1)).toBe("final")
      const lastId = res.ids.at(-1) ?? ""
      expect(lastId).toMatch(/^[0-9a-f]{32}:\d+$/)

      const body = { profile: { name: "Sam" }, count: 1 }
      // The owner at the end, mid-stream, another user naming it, an id naming nothing: the same 204.
      for (const [headers, id] of [
        [alice.headers, lastId],
        [alice.headers, res.ids[0] ?? ""],
        [bob.headers, lastId],
        [alice.headers, "0123456789abcdef0123456789abcdef:1"],
        [alice.headers, "not-an-id"]
      ] as const) {
        const again = yield* generateSse(url, { ...headers, "last-event-id": id }, body)
        expect(again.status, id).toBe(204)
        expect(again.raw).toBe("")
      }
      // Nothing generated nor counted by the reconnects.
      expect(yield* openerRows(alice.id)).toHaveLength(1)
      expect(yield* openerRows(bob.id)).toHaveLength(0)
      expect(yield* generations(alice.id)).toEqual([{ kind: "openers", used: 1 }])
      expect(yield* generations(bob.id)).toEqual([])
    })
  )
})
