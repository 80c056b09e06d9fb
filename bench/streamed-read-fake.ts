/**
 * The provider side of `npm run bench:streamed-read`, in a process of its own (its CPU is not the
 * measured process's): two Gemini wire fakes that answer every call at once with the latency bench's
 * transcript, one in deltas of 8 tokens, one in deltas of one token. Sends their URLs to the parent.
 */
import { DEFAULT_CHAT } from "../test/fixtures/chat-screenshot.ts"
import { geminiProtocol } from "../test/fakes/ai/gemini.ts"
import { LATENCY_PROFILES } from "../test/fakes/ai/index.ts"
import { startFake } from "../test/fakes/ai/harness.ts"
import { fakeTranscript } from "./support.ts"

const chat = [...DEFAULT_CHAT, { sender: "me" as const, text: "Great, see you at the trailhead" }]
const start = (tokensPerDelta: number) =>
  startFake(geminiProtocol, {
    // Paced only to cut the answer into deltas: every wait is over at once.
    latency: { ...LATENCY_PROFILES.gemini, tokensPerDelta },
    wait: () => Promise.resolve(true)
  }).then((fake) => {
    fake.setFallback({ kind: "ok", text: "", textFor: ({ body }) => fakeTranscript(body, chat) })
    return fake
  })
const [eight, one] = await Promise.all([start(8), start(1)])
process.send?.({ 8: eight.url, 1: one.url })
process.once("disconnect", () => {
  void Promise.all([eight.close(), one.close()]).finally(() => process.exit(0))
})
