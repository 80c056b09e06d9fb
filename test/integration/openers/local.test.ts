/**
 * Without any AI key the chain is the local provider: deterministic, offline, free, labelled.
 * Openers stream and save exactly as with a real provider.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { TestDb } from "../../support/database.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { aiCallRows, doneOpeners, generateJson, generateSse, newMatch, openerRows } from "./support.ts"

layer(testServer({ db: TestDb(), config: { AI_DAILY_SPEND_CAP_MICROS: "0" } }), { timeout: 60_000 })(
  "magic openers: the local provider",
  (it) => {
    it.effect("SSE works: deltas, done openers marked [local N], final with local: true and no cost", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const res = yield* generateSse(url, alice.headers, {
          profile: { name: "Sam", interests: ["chess"] },
          count: 2
        })
        expect(res.status).toBe(200)
        const kinds = res.events.map((event) => event.event)
        expect(kinds.at(-1)).toBe("final")
        expect(kinds.filter((kind) => kind !== "delta")).toEqual(["done", "done", "final"])
        expect(kinds.filter((kind) => kind === "delta").length).toBeGreaterThan(2)

        const openers = doneOpeners(res.events)
        expect(openers.map((opener) => opener.text)).toEqual([
          "Okay Sam, important question: What's the story behind your love of chess? [local 1]",
          "Hi Sam! Settle a debate for me: What's the story behind your love of weekend plans? [local 2]"
        ])
        expect(openers.map((opener) => [opener.provider, opener.model, opener.position])).toEqual([
          ["local", "local-deterministic", 0],
          ["local", "local-deterministic", 1]
        ])
        // The deltas of each index add up to its opener.
        for (const [index, opener] of openers.entries()) {
          const text = res.events
            .flatMap((event) => {
              const data = event.data as { index?: number; text?: string }
              return event.event === "delta" && data.index === index ? [data.text ?? ""] : []
            })
            .join("")
          expect(text.trim()).toBe(opener.text)
        }
        expect(res.events.at(-1)?.data).toEqual({
          batchId: openers[0]?.batchId,
          provider: "local",
          model: "local-deterministic",
          local: true,
          usage: { inputTokens: expect.any(Number), outputTokens: expect.any(Number) },
          costMicros: 0,
          blocked: 0,
          openers
        })
        expect((yield* openerRows(alice.id)).map((row) => row["provider"])).toEqual(["local", "local"])
        expect(yield* aiCallRows(alice.id)).toEqual([
          expect.objectContaining({ feature: "openers", provider: "local", cost_micros: 0, outcome: "ok" })
        ])
      })
    )

    it.effect("JSON mode too; a match's next batch never repeats the previous one", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const match = yield* newMatch(url, alice.headers, { name: "Kim" })
        const first = yield* generateJson(url, alice.headers, { matchId: match.id, count: 2, tone: "bold" })
        expect(first.status).toBe(200)
        expect(first.body).toMatchObject({
          success: true,
          data: { meta: { provider: "local", local: true, costMicros: 0, blocked: 0 } }
        })
        const second = yield* generateJson(url, alice.headers, { matchId: match.id, count: 2, tone: "bold" })
        expect(second.status).toBe(200)
        const texts = (yield* openerRows(alice.id)).map((row) => String(row["text"]))
        expect(texts).toHaveLength(4)
        expect(new Set(texts).size).toBe(4)
        for (const text of texts) expect(text).toMatch(/^Kim, .*\[local \d+\]$|^Hi Kim, .*\[local \d+\]$/)
      })
    )
  }
)
