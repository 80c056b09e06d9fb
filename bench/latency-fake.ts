/**
 * The provider side of `npm run bench:latency`, in a process of its own (its CPU is not the app's):
 * one wire fake (BENCH_FAKE_PROVIDER: `gemini`, the default, `openai` or `anthropic`) paced by its default model's latency
 * profile (test/fakes/ai). Its vision reads (non-streamed calls) answer the chat in the transcript
 * shape the request's JSON schema asks for; its streams answer three suggestion lines. Prints
 * `listening <url>` once ready and `paced <json>` per answer (see `Paced`); stops on SIGTERM.
 */
import { DEFAULT_CHAT } from "../test/fixtures/chat-screenshot.ts"
import { type FakeProviderName, LATENCY_PROFILES } from "../test/fakes/ai/index.ts"
import { type ProviderProtocol, startFake } from "../test/fakes/ai/harness.ts"
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

const fake = await startFake(protocol, {
  latency: LATENCY_PROFILES[name],
  // One line per answer (to the log file the bench reads): the provider's share of each session's time.
  onPaced: (paced) => console.log(`paced ${JSON.stringify(paced)}`)
})
fake.setFallback({
  kind: "ok",
  text: FAKE_SUGGESTIONS,
  // Non-streamed calls are the vision reads: they get the transcript (and are paced by its length).
  textFor: ({ body, stream }) => (stream ? FAKE_SUGGESTIONS : fakeTranscript(body, chat))
})
console.log(`listening ${fake.url}`)
process.once("SIGTERM", () => {
  void fake.close().finally(() => process.exit(0))
})
