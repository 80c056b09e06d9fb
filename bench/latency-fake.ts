/**
 * The provider side of `npm run bench:latency`, in a process of its own (its CPU is not the app's):
 * one wire fake (BENCH_FAKE_PROVIDER: `gemini`, the default, `openai` or `anthropic`) paced by its default model's latency
 * profile (test/fakes/ai). Its vision reads (non-streamed calls) answer the chat in the transcript
 * shape the request's JSON schema asks for; its streams answer three suggestion lines. Prints
 * `listening <url>` once ready and `paced <json>` per answer (see `Paced`); stops on SIGTERM.
 */
import { DEFAULT_CHAT } from "../test/fixtures/chat-screenshot.ts"
import { type FakeProviderName, LATENCY_PROFILES } from "../test/fakes/ai/index.ts"
import { type ProviderProtocol, arrayField, field, startFake } from "../test/fakes/ai/harness.ts"
import { anthropicProtocol } from "../test/fakes/ai/anthropic.ts"
import { geminiProtocol } from "../test/fakes/ai/gemini.ts"
import { openaiProtocol } from "../test/fakes/ai/openai.ts"

const name = process.env["BENCH_FAKE_PROVIDER"] ?? "gemini"
const protocols: Readonly<Record<FakeProviderName, ProviderProtocol>> = {
  gemini: geminiProtocol,
  openai: openaiProtocol,
  anthropic: anthropicProtocol
}
const isName = (value: string): value is FakeProviderName => value in protocols
if (!isName(name)) throw new Error(`unknown provider ${name}: gemini, openai or anthropic`)
const protocol = protocols[name]

/** The JSON schema a request asks for (Gemini `responseJsonSchema`, OpenAI `response_format`, Anthropic's). */
const schemaOf = (body: unknown): unknown =>
  field(field(body, "generationConfig"), "responseJsonSchema") ??
  field(field(field(body, "response_format"), "json_schema"), "schema") ??
  field(field(body, "output_config"), "schema") ??
  field(arrayField(body, "tools")[0], "input_schema")

/** What a model reads from every screenshot (the last line is the screenshot's own; the fake does not read it). */
const chat = [...DEFAULT_CHAT, { sender: "me" as const, text: "Great, see you at the trailhead" }]

/**
 * The transcript in the shape the request's JSON schema asks for: `ocr-v1`'s (a confidence per message
 * and overall, null times) when the schema requires a message's `time`, else the compact one (`ocr-v2`).
 */
const transcriptFor = (body: unknown): string =>
  /"required":\[[^\]]*"time"/.test(JSON.stringify(schemaOf(body) ?? {}))
    ? JSON.stringify({
        messages: chat.map((message) => ({ sender: message.sender, text: message.text, time: null, confidence: 0.98 })),
        matchName: "Alex",
        app: "iMessage",
        confidence: 0.97
      })
    : JSON.stringify({
        messages: chat.map((message) => ({ sender: message.sender, text: message.text })),
        matchName: "Alex",
        app: "iMessage",
        confidence: 0.97
      })

const SUGGESTIONS = [
  "Saturday morning works for me, the lighthouse trail it is!",
  "Deal, I will bring the coffee if you bring the good mood",
  "Perfect, want to meet at the trailhead around nine?"
].join("\n")

const fake = await startFake(protocol, {
  latency: LATENCY_PROFILES[name],
  // One line per answer (to the log file the bench reads): the provider's share of each session's time.
  onPaced: (paced) => console.log(`paced ${JSON.stringify(paced)}`)
})
fake.setFallback({
  kind: "ok",
  text: SUGGESTIONS,
  // Non-streamed calls are the vision reads: they get the transcript (and are paced by its length).
  textFor: ({ body, stream }) => (stream ? SUGGESTIONS : transcriptFor(body))
})
console.log(`listening ${fake.url}`)
process.once("SIGTERM", () => {
  void fake.close().finally(() => process.exit(0))
})
