/**
 * The Ocr service with the real SDKs pointed at wire-level fakes of the providers (see
 * test/fakes/ai): the vision read (image and schema on the wire, the transcript decoded), and
 * every way it gives way to local OCR, which then really reads the generated screenshot.
 */
import { afterAll, beforeAll, beforeEach, expect, layer } from "@effect/vitest"
import { Effect, Layer, Redacted, Ref } from "effect"
import { makeAnthropicProvider } from "../../../src/core/ai/anthropic.ts"
import { makeGeminiProvider } from "../../../src/core/ai/gemini.ts"
import { AiLedger, DEFAULT_PRICES, type LedgerEntry } from "../../../src/core/ai/ledger.ts"
import { makeLocalProvider } from "../../../src/core/ai/local.ts"
import { makeOpenAiProvider } from "../../../src/core/ai/openai.ts"
import type { AiProvider } from "../../../src/core/ai/provider.ts"
import { AiStrategy } from "../../../src/core/ai/strategy.ts"
import { LocalOcr } from "../../../src/core/ocr/local.ts"
import { Ocr } from "../../../src/core/ocr/ocr.ts"
import { ocrPromptV3, ocrSystem } from "../../../src/modules/sessions/prompts/ocr-v3.ts"
import { type FakeProvider, startFakeProvider } from "../../fakes/ai/index.ts"
import { assertFontsRender, chatScreenshotPng, DEFAULT_CHAT } from "../../fixtures/chat-screenshot.ts"
import { transcriptProblems } from "./transcript-match.ts"

const apiKey = Redacted.make("test-key")
let gemini: FakeProvider
let openai: FakeProvider
let anthropic: FakeProvider
let screenshot: Buffer

beforeAll(async () => {
  await assertFontsRender()
  ;[gemini, openai, anthropic, screenshot] = await Promise.all([
    startFakeProvider("gemini"),
    startFakeProvider("openai"),
    startFakeProvider("anthropic"),
    chatScreenshotPng()
  ])
})
afterAll(async () => {
  await Promise.all([gemini.close(), openai.close(), anthropic.close()])
})
beforeEach(() => {
  gemini.reset()
  openai.reset()
  anthropic.reset()
})

const PROVIDER_TIMEOUT_MS = 5_000

const providers = (): Record<"gemini" | "openai" | "anthropic", AiProvider> => ({
  gemini: makeGeminiProvider({ apiKey, model: "gemini-test", timeoutMs: PROVIDER_TIMEOUT_MS, baseUrl: gemini.url }),
  openai: makeOpenAiProvider({ apiKey, model: "gpt-test", timeoutMs: PROVIDER_TIMEOUT_MS, baseUrl: openai.url }),
  anthropic: makeAnthropicProvider({
    apiKey,
    model: "claude-test",
    timeoutMs: PROVIDER_TIMEOUT_MS,
    baseUrl: anthropic.url
  })
})

/** An AI strategy over `chain` with an in-memory ledger. */
const strategyOf = (chain: ReadonlyArray<AiProvider>) =>
  Effect.gen(function* () {
    const entries = yield* Ref.make<ReadonlyArray<LedgerEntry>>([])
    const strategy = yield* AiStrategy.make({
      providers: chain,
      prices: DEFAULT_PRICES,
      breaker: { failures: 5, cooldownMs: 60_000 },
      dailyCapMicros: 0
    }).pipe(Effect.provide(Layer.succeed(AiLedger, AiLedger.inMemory(entries))))
    return { strategy, entries }
  })

/** The Ocr service over `chain`, sharing the file's local OCR pool. */
const ocrOver = (chain: ReadonlyArray<AiProvider>, visionTimeoutMs = 10_000) =>
  Effect.gen(function* () {
    const { strategy, entries } = yield* strategyOf(chain)
    const ocr = yield* Ocr.make({ prompt: ocrPromptV3, visionTimeoutMs }).pipe(
      Effect.provideService(AiStrategy, strategy)
    )
    return { ocr, entries }
  })

const context = { feature: "sessions.ocr", userId: "user_ocr" }
const image = () => ({ bytes: screenshot, mimeType: "image/png" as const })

/** An `ocr-v3` answer (a line per message) and the transcript it reads as. */
const VISION_JSON = JSON.stringify({
  messages: [
    "system: Today 9:41 PM",
    "them [9:40 PM]: Hey! How was your weekend?",
    "me: Pretty good, I went hiking near the lake with my sister"
  ],
  unsure: [{ message: 2, confidence: 0.8 }],
  matchName: "Alex",
  app: "iMessage",
  confidence: 0.96
})
const VISION_TRANSCRIPT = {
  messages: [
    { sender: "system", text: "Today 9:41 PM", time: null, confidence: 0.96 },
    { sender: "them", text: "Hey! How was your weekend?", time: "9:40 PM", confidence: 0.96 },
    { sender: "me", text: "Pretty good, I went hiking near the lake with my sister", time: null, confidence: 0.8 }
  ],
  matchName: "Alex",
  app: "iMessage",
  confidence: 0.96
}

const expectLocalReading = (transcript: { readonly engine: string }) => {
  expect(transcript.engine).toBe("local-ocr")
}

layer(LocalOcr.layer(), { timeout: 60_000, excludeTestServices: true })("Ocr over the wire", (it) => {
  it.effect("vision: the screenshot and the schema reach OpenAI, the transcript decodes (vision:gpt-4o)", () =>
    Effect.gen(function* () {
      openai.enqueue({ kind: "ok", text: VISION_JSON, usage: { input: 1_200, output: 150 } })
      const { ocr, entries } = yield* ocrOver([providers().openai])
      const transcript = yield* ocr.read(context, image())
      expect(transcript).toEqual({ ...VISION_TRANSCRIPT, engine: "vision:gpt-4o" })
      const body = JSON.stringify(openai.requests[0]?.body)
      expect(body).toContain(screenshot.toString("base64"))
      expect(body).toContain("data:image/png;base64,")
      expect(body).toContain(JSON.stringify(ocrSystem).slice(1, 60))
      expect(body).toContain('"json_schema"')
      expect(body).toContain('"matchName"')
      // The model is asked for lines, with the pattern the answer is decoded with.
      expect(body).toContain('"pattern":"^(me|them|system)')
      expect((yield* Ref.get(entries)).map((entry) => [entry.feature, entry.provider, entry.outcome])).toEqual([
        ["sessions.ocr", "gpt-4o", "ok"]
      ])
    })
  )

  it.effect("every vision provider down (500s): local OCR reads the screenshot", () =>
    Effect.gen(function* () {
      gemini.setFallback({ kind: "status", status: 500 })
      openai.setFallback({ kind: "status", status: 500 })
      anthropic.setFallback({ kind: "status", status: 500 })
      const p = providers()
      const { ocr, entries } = yield* ocrOver([p.gemini, p.openai, p.anthropic])
      const transcript = yield* ocr.read(context, image())
      expectLocalReading(transcript)
      expect(transcriptProblems(transcript, DEFAULT_CHAT)).toEqual([])
      expect([gemini, openai, anthropic].map((fake) => fake.requests.length)).toEqual([1, 1, 1])
      expect((yield* Ref.get(entries)).map((entry) => entry.errorKind)).toEqual(["server", "server", "server"])
    })
  )

  it.effect("a chain with only the local provider (no AI key): local OCR, no provider called", () =>
    Effect.gen(function* () {
      const { ocr, entries } = yield* ocrOver([makeLocalProvider()])
      expect(ocr.vision).toBe(false)
      const transcript = yield* ocr.read(context, image())
      expectLocalReading(transcript)
      expect(transcriptProblems(transcript, DEFAULT_CHAT)).toEqual([])
      expect(yield* Ref.get(entries)).toEqual([])
      expect([gemini, openai, anthropic].map((fake) => fake.requests.length)).toEqual([0, 0, 0])
    })
  )

  it.effect("invalid vision output twice (answer, then the corrective retry): local OCR", () =>
    Effect.gen(function* () {
      openai.enqueue(
        { kind: "ok", text: '{"messages":"not a list"}' },
        { kind: "ok", text: '{"messages":[{"sender":"nobody"}]}' }
      )
      const { ocr } = yield* ocrOver([providers().openai, providers().anthropic])
      const transcript = yield* ocr.read(context, image())
      expectLocalReading(transcript)
      expect(transcriptProblems(transcript, DEFAULT_CHAT)).toEqual([])
      expect(openai.requests).toHaveLength(2)
      // An invalid answer stops the chain: the next provider is not asked.
      expect(anthropic.requests).toHaveLength(0)
    })
  )

  it.effect("the vision read over its own timeout: the request is aborted, local OCR answers", () =>
    Effect.gen(function* () {
      gemini.enqueue({ kind: "hang" })
      // The provider's own timeout outlasts the test: only the vision timeout (300 ms) can end the
      // read (not a stopwatch around it, which counted local OCR's time on a loaded machine too).
      const { ocr } = yield* ocrOver([{ ...providers().gemini, timeoutMs: 600_000 }], 300)
      const transcript = yield* ocr.read(context, image())
      expectLocalReading(transcript)
      expect(transcriptProblems(transcript, DEFAULT_CHAT)).toEqual([])
      const aborted = yield* Effect.promise(() => gemini.nextClientAbort())
      // The screenshot read is streamed (its lines go to the app as they are written).
      expect(aborted.path).toContain(":streamGenerateContent")
    })
  )

  it.effect("Ocr.layer builds the service (vision chain + its own local OCR pool)", () =>
    Effect.gen(function* () {
      anthropic.enqueue({ kind: "ok", text: VISION_JSON })
      const { strategy } = yield* strategyOf([providers().anthropic])
      const transcript = yield* Effect.flatMap(Ocr, (ocr) => ocr.read(context, image())).pipe(
        Effect.provide(
          Ocr.layer({ prompt: ocrPromptV3, visionTimeoutMs: 10_000 }).pipe(
            Layer.provide(Layer.succeed(AiStrategy, strategy))
          )
        )
      )
      expect(transcript).toEqual({ ...VISION_TRANSCRIPT, engine: "vision:claude-sonnet" })
      expect(JSON.stringify(anthropic.requests[0]?.body)).toContain(screenshot.toString("base64"))
    })
  )
})
