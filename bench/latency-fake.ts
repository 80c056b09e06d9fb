/**
 * The provider side of `npm run bench:latency`, in a process of its own (its CPU is not the app's):
 * one wire fake (BENCH_FAKE_PROVIDER: `gemini`, the default, `openai` or `anthropic`) paced by its default model's latency
 * profile (test/fakes/ai). Its vision reads (the calls carrying an image, streamed or not) answer
 * the chat in the transcript shape the request's JSON schema asks for; its text streams answer
 * three suggestion lines. Prints
 * `listening <url>` once ready and `paced <json>` per answer (see `Paced`); stops on SIGTERM. SIGUSR1 starts an
 * outage (every call answers 503) and SIGUSR2 ends it: the soak's provider fault (bench/soak.ts).
 */
import { DEFAULT_CHAT } from "../test/fixtures/chat-screenshot.ts"
import { type FakeProviderName, LATENCY_PROFILES } from "../test/fakes/ai/index.ts"
import { type Behavior, type ProviderProtocol, startFake } from "../test/fakes/ai/harness.ts"
import { anthropicProtocol } from "../test/fakes/ai/anthropic.ts"
import { geminiProtocol } from "../test/fakes/ai/gemini.ts"
import { openaiProtocol } from "../test/fakes/ai/openai.ts"
import { FAKE_SUGGESTIONS, fakeTranscript } from "./support.ts"

const name = process.env["BENCH_FAKE_PROVIDER"] ?? "gemini"
const protocols: Readonly<Record<FakeProviderName, ProviderProtocol>> = {
  gemini: geminiProtocol,
  openai: openaiProtocol,
  anthropic: anthropicProtocol
}
const isName = (value: string): value is FakeProviderName => value in protocols
if (!isName(name)) throw new Error(`unknown provider ${name}: gemini, openai or anthropic`)
const protocol = protocols[name]

/** What a model reads from every screenshot (the last line is the screenshot's own; the fake does not read it). */
const chat = [...DEFAULT_CHAT, { sender: "me" as const, text: "Great, see you at the trailhead" }]

/**
 * Three new lines for a regeneration: the first set whose lines the request does not already carry (a
 * regeneration's prompt lists the session's earlier suggestions, and exact repeats are dropped).
 */
const SUGGESTION_SETS = [
  FAKE_SUGGESTIONS,
  ...Array.from({ length: 8 }, (_, i) =>
    [
      `Only if we end at the bakery on the corner, round ${i + 2}`,
      `You had me at the lighthouse, take ${i + 2}`,
      `Nine it is, I will be the one with two coffees, try ${i + 2}`
    ].join("\n")
  )
]
const suggestionsFor = (body: unknown): string => {
  const asked = JSON.stringify(body)
  return SUGGESTION_SETS.find((set) => !asked.includes(set.split("\n")[0] ?? "")) ?? FAKE_SUGGESTIONS
}

// The bench may replace the text calls' time to first token (BENCH_TEXT_TTFT_MS, a what-if).
const textTtftMs = process.env["BENCH_TEXT_TTFT_MS"]
const fake = await startFake(protocol, {
  latency:
    textTtftMs === undefined ? LATENCY_PROFILES[name] : { ...LATENCY_PROFILES[name], ttftMs: Number(textTtftMs) },
  // One line per answer (to the log file the bench reads): the provider's share of each session's time.
  onPaced: (paced) => console.log(`paced ${JSON.stringify(paced)}`)
})
const healthy: Behavior = {
  kind: "ok",
  text: FAKE_SUGGESTIONS,
  // The calls with an image are the vision reads: they get the transcript (and are paced by its length).
  textFor: ({ body }) => (protocol.hasImage(body) ? fakeTranscript(body, chat) : suggestionsFor(body))
}
fake.setFallback(healthy)
// The soak's provider outage: from SIGUSR1 to SIGUSR2 every call answers 503 (the app's fallback chain runs).
process.on("SIGUSR1", () => {
  fake.setFallback({ kind: "status", status: 503, message: "overloaded" })
  console.log("outage on")
})
process.on("SIGUSR2", () => {
  fake.setFallback(healthy)
  console.log("outage off")
})
console.log(`listening ${fake.url}`)
process.once("SIGTERM", () => {
  void fake.close().finally(() => process.exit(0))
})
