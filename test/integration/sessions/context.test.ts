/**
 * The suggestions' context, as the provider receives it (a wire fake of OpenAI reads the
 * screenshots and writes the suggestions): with a match, its profile and notes, the earlier
 * sessions with that match (their last messages) and the user's liked and disliked suggestions;
 * on regeneration, the instruction and the session's earlier suggestions (never repeated).
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { afterAll, beforeEach } from "vitest"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { sql } from "../../support/database.ts"
import { http, postJson } from "../../support/http.ts"
import { baseUrl } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { newMatch, openAiPrompt } from "../openers/support.ts"
import { awaitFinished, createSession, uploadPng, type WireSession, sessionsServer } from "./support.ts"

const openai = await startFakeOpenAI()
afterAll(() => openai.close())
beforeEach(() => openai.reset())

const vision = (...texts: ReadonlyArray<[sender: string, text: string]>) => ({
  kind: "ok" as const,
  text: JSON.stringify({
    messages: texts.map(([sender, text]) => `${sender}: ${text}`),
    matchName: "Sam",
    app: null,
    confidence: 0.95
  })
})

/** The prompt of the last streamed request (the suggestions). */
const lastSuggestionsPrompt = () => openAiPrompt(openai.requests.filter((request) => !request.image).at(-1)?.body)

layer(sessionsServer(openai.url), { timeout: 120_000 })("sessions: the suggestions' context", (it) => {
  it.effect("a match's profile, notes, earlier sessions and the user's feedback reach the prompt", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const match = yield* newMatch(url, alice.headers, {
        name: "Sam",
        bio: "Climber and amateur baker",
        interests: ["bouldering", "sourdough"],
        notes: "Met at the climbing gym"
      })

      // The first session with Sam.
      openai.enqueue(vision(["them", "Did you try the new wall?"], ["me", "Not yet, this weekend maybe"]), {
        kind: "ok",
        text: "First idea about the wall\nSecond idea about baking\nThird idea about the weekend"
      })
      const firstUpload = yield* uploadPng(url, alice.headers, yield* Effect.promise(() => tinyImage("png", 64, 48)))
      const first = yield* createSession(url, alice.headers, { uploadIds: [firstUpload], matchId: match.id })
      const firstDone = yield* awaitFinished(url, alice.headers, (first.body as { data: WireSession }).data.id)
      expect(firstDone.suggestions.map((s) => s.text)).toEqual([
        "First idea about the wall",
        "Second idea about baking",
        "Third idea about the weekend"
      ])
      const [liked, disliked] = firstDone.suggestions
      const base = `${url}/api/v1/sessions/${firstDone.id}/suggestions`
      expect((yield* http(`${base}/${liked?.id}/like`, { method: "POST", headers: alice.headers })).status).toBe(200)
      expect(
        (yield* postJson(`${base}/${disliked?.id}/dislike`, JSON.stringify({ reason: "too random" }), alice.headers))
          .status
      ).toBe(200)

      // The second session with Sam: its prompt carries all of the above.
      openai.enqueue(vision(["them", "So, how was the climb?"]), {
        kind: "ok",
        text: "It was great, you should come\nMy arms are still shaking\nNext time you lead"
      })
      const secondUpload = yield* uploadPng(url, alice.headers, yield* Effect.promise(() => tinyImage("png", 80, 60)))
      const second = yield* createSession(url, alice.headers, {
        uploadIds: [secondUpload],
        matchId: match.id,
        context: "Keep it light"
      })
      const secondDone = yield* awaitFinished(url, alice.headers, (second.body as { data: WireSession }).data.id)
      expect(secondDone.status).toBe("completed")
      expect(lastSuggestionsPrompt()).toBe(
        [
          'The other person: "Sam"',
          'Their profile bio: "Climber and amateur baker"',
          'Their interests: "bouldering", "sourdough"',
          `The user's notes about them: "Met at the climbing gym"`,
          "Earlier conversations with them (newest first, last messages only):\n" +
            'Conversation 1:\nthem: "Did you try the new wall?"\nme: "Not yet, this weekend maybe"',
          'What the user wants: "Keep it light"',
          'Conversation ("me" is the user, "them" the other person):\nthem: "So, how was the climb?"',
          'Replies this user liked before (follow their style, do not copy):\n- "First idea about the wall"',
          'Replies this user disliked (avoid what made them bad):\n- "Second idea about baking" (reason: "too random")',
          "Now write the 3 replies, one per line."
        ].join("\n\n")
      )

      // Regenerating the second session: the instruction, and its three suggestions never again.
      const [before] = yield* sql<{ cost_micros: number }>("SELECT cost_micros FROM sessions WHERE id = $1", [
        secondDone.id
      ])
      // gpt-4o list prices: 1000 tokens in at 2.5 $/M + 100 out at 10 $/M = 3500 micro-units.
      openai.enqueue({
        kind: "ok",
        text: "My arms are still shaking\nA brand new one\nAnother new one",
        usage: { input: 1_000, output: 100 }
      })
      const regenerated = yield* postJson(
        `${url}/api/v1/sessions/${secondDone.id}/suggestions`,
        JSON.stringify({ instruction: "Ask her out" }),
        alice.headers
      )
      expect(regenerated.status).toBe(200)
      const prompt = lastSuggestionsPrompt()
      expect(prompt).toContain('The user asks for this batch: "Ask her out"')
      expect(prompt).toContain(
        "Never repeat or paraphrase these replies, already suggested:\n" +
          '- "It was great, you should come"\n- "My arms are still shaking"\n- "Next time you lead"'
      )
      // The exact repeat is dropped.
      expect(
        (regenerated.body as { data: { suggestions: ReadonlyArray<{ text: string }> } }).data.suggestions.map(
          (s) => s.text
        )
      ).toEqual(["A brand new one", "Another new one"])
      // The regeneration's cost is added to the session's.
      expect(yield* sql("SELECT cost_micros FROM sessions WHERE id = $1", [secondDone.id])).toEqual([
        { cost_micros: (before?.cost_micros ?? 0) + 3_500 }
      ])
      // Vision requests: one per session, none for the regeneration.
      expect(openai.requests.filter((request) => request.image)).toHaveLength(2)
      expect(
        yield* sql("SELECT batch, text FROM suggestions WHERE session_id = $1 AND batch = 1 ORDER BY position", [
          secondDone.id
        ])
      ).toEqual([
        { batch: 1, text: "A brand new one" },
        { batch: 1, text: "Another new one" }
      ])
    })
  )
})
