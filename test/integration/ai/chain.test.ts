/**
 * The AI chain against the real SDKs pointed at wire-level fakes of Gemini, OpenAI and
 * Anthropic: answers, timeouts, 429s, invalid requests, malformed bodies, cut streams,
 * cancellation seen by the fake as a closed connection, the breaker, the ledger, the cap.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Fiber, Layer, Redacted, Ref, Schema, Stream } from "effect"
import { makeAnthropicProvider } from "../../../src/core/ai/anthropic.ts"
import { makeGeminiProvider } from "../../../src/core/ai/gemini.ts"
import { AiLedger, DEFAULT_PRICES, type LedgerEntry } from "../../../src/core/ai/ledger.ts"
import { makeOpenAiProvider } from "../../../src/core/ai/openai.ts"
import type { AiProvider } from "../../../src/core/ai/provider.ts"
import { AiStrategy, type AiStrategyOptions } from "../../../src/core/ai/strategy.ts"
import { eventually } from "../../support/eventually.ts"
import { type FakeProvider, startFakeProvider } from "../../fakes/ai/index.ts"

const apiKey = Redacted.make("test-key")
let gemini: FakeProvider
let openai: FakeProvider
let anthropic: FakeProvider

beforeAll(async () => {
  ;[gemini, openai, anthropic] = await Promise.all([
    startFakeProvider("gemini"),
    startFakeProvider("openai"),
    startFakeProvider("anthropic")
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

const TIMEOUT_MS = 400

const providers = (): Record<"gemini" | "openai" | "anthropic", AiProvider> => ({
  gemini: makeGeminiProvider({ apiKey, model: "gemini-test", timeoutMs: TIMEOUT_MS, baseUrl: gemini.url }),
  openai: makeOpenAiProvider({ apiKey, model: "gpt-test", timeoutMs: TIMEOUT_MS, baseUrl: openai.url }),
  anthropic: makeAnthropicProvider({ apiKey, model: "claude-test", timeoutMs: TIMEOUT_MS, baseUrl: anthropic.url })
})

const chainOf = (order: ReadonlyArray<AiProvider>, overrides: Partial<AiStrategyOptions> = {}) =>
  Effect.gen(function* () {
    const entries = yield* Ref.make<ReadonlyArray<LedgerEntry>>([])
    const strategy = yield* AiStrategy.make({
      providers: order,
      prices: DEFAULT_PRICES,
      breaker: { failures: 2, cooldownMs: 60_000 },
      dailyCapMicros: 0,
      ...overrides
    }).pipe(Effect.provide(Layer.succeed(AiLedger, AiLedger.inMemory(entries))))
    return { strategy, entries }
  })

const Opener = Schema.Struct({
  opener: Schema.String.pipe(Schema.minLength(1)),
  tone: Schema.Literal("playful", "sincere")
})
const ask = { feature: "test", userId: "user_wire" }

const texts = (events: ReadonlyArray<{ readonly _tag: string }>) =>
  events.flatMap((event) => ("text" in event && typeof event.text === "string" ? [event.text] : [])).join("")

const collect = <A, E>(stream: Stream.Stream<A, E>) =>
  Effect.map(Stream.runCollect(stream), (chunk) => Chunk.toReadonlyArray(chunk))

describe.each(["gemini", "openai", "anthropic"] as const)("%s through its real SDK", (name) => {
  const fake = () => ({ gemini, openai, anthropic })[name]

  it.live("structured output: JSON mode requested, answer validated, usage and cost recorded", () =>
    Effect.gen(function* () {
      fake().enqueue({
        kind: "ok",
        text: '{"opener":"Coffee or tea?","tone":"playful"}',
        usage: { input: 120, output: 30 }
      })
      const { strategy, entries } = yield* chainOf([providers()[name]])
      const result = yield* strategy.generateObject(ask, {
        schema: Opener,
        prompt: "Write one opener",
        system: "Be kind"
      })
      expect(result.value).toEqual({ opener: "Coffee or tea?", tone: "playful" })
      expect(result.usage).toEqual({ inputTokens: 120, outputTokens: 30 })
      const [entry] = yield* Ref.get(entries)
      expect(entry).toMatchObject({ outcome: "ok", inputTokens: 120, outputTokens: 30, costMicros: result.costMicros })
      expect(result.costMicros).toBeGreaterThan(0)
      const sent = JSON.stringify(fake().requests[0]?.body)
      expect(sent).toContain("Write one opener")
      expect(sent).toContain("opener")
    })
  )

  it.live("streaming: deltas in order, then usage", () =>
    Effect.gen(function* () {
      fake().enqueue({
        kind: "ok",
        text: "Hello there, stranger",
        chunks: ["Hello ", "there, ", "stranger"],
        usage: { input: 10, output: 6 }
      })
      const { strategy } = yield* chainOf([providers()[name]])
      const events = yield* collect(strategy.streamText(ask, { prompt: "Say hi" }))
      expect(events.filter((event) => event._tag === "Delta")).toEqual([
        { _tag: "Delta", text: "Hello " },
        { _tag: "Delta", text: "there, " },
        { _tag: "Delta", text: "stranger" }
      ])
      expect(events.at(-1)).toMatchObject({ _tag: "Completed", usage: { inputTokens: 10, outputTokens: 6 } })
    })
  )

  it.live(
    "streamed structured output with an image: the JSON in pieces as the provider writes it, then the value",
    () =>
      Effect.gen(function* () {
        const chunks = ['{"opener":"Co', 'ffee or tea?",', '"tone":"playful"}']
        fake().enqueue({ kind: "ok", text: chunks.join(""), chunks, usage: { input: 900, output: 12 } })
        const { strategy, entries } = yield* chainOf([providers()[name]])
        const bytes = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 9, 8, 7])
        const events = yield* collect(
          strategy.streamObject(ask, { schema: Opener, prompt: "Read this", image: { bytes, mimeType: "image/png" } })
        )
        // Anthropic streams a forced tool's input as input_json_delta pieces; the others as text.
        expect(events.filter((event) => event._tag === "Delta")).toEqual(
          chunks.map((text) => ({ _tag: "Delta", text }))
        )
        expect(events.at(-1)).toMatchObject({
          _tag: "Completed",
          value: { opener: "Coffee or tea?", tone: "playful" },
          usage: { inputTokens: 900, outputTokens: 12 }
        })
        const [request] = fake().requests
        expect(request?.stream).toBe(true)
        expect(JSON.stringify(request?.body)).toContain(Buffer.from(bytes).toString("base64"))
        expect(yield* Ref.get(entries)).toMatchObject([{ outcome: "ok", inputTokens: 900 }])
      })
  )

  it.live("vision: the image travels with the prompt", () =>
    Effect.gen(function* () {
      fake().enqueue({ kind: "ok", text: '{"opener":"Nice dog","tone":"sincere"}' })
      const { strategy } = yield* chainOf([providers()[name]])
      const bytes = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4])
      yield* strategy.generateObject(ask, {
        schema: Opener,
        prompt: "Read this",
        image: { bytes, mimeType: "image/png" }
      })
      expect(JSON.stringify(fake().requests[0]?.body)).toContain(Buffer.from(bytes).toString("base64"))
    })
  )

  it.live("a base URL written with its API version (the SDKs' own convention) reaches the same endpoint", () =>
    Effect.gen(function* () {
      const conventional = { gemini: "/v1beta/", openai: "/v1", anthropic: "/v1/" }[name]
      const make = { gemini: makeGeminiProvider, openai: makeOpenAiProvider, anthropic: makeAnthropicProvider }[name]
      for (const baseUrl of [fake().url, `${fake().url}${conventional}`]) {
        fake().enqueue({ kind: "ok", text: '{"opener":"Same place","tone":"playful"}' })
        const { strategy } = yield* chainOf([make({ apiKey, model: "m-test", timeoutMs: TIMEOUT_MS, baseUrl })])
        const result = yield* strategy.generateObject(ask, { schema: Opener, prompt: "x" })
        expect(result.value.opener).toBe("Same place")
      }
      expect(fake().requests.map((request) => request.path.replace(/\?.*$/, ""))).not.toContainEqual(
        expect.stringMatching(/\/v1(beta)?\/v1/)
      )
    })
  )

  it.live("a stream that goes quiet after its first delta fails as a timeout and its request is aborted", () => {
    let release = () => {}
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    return Effect.gen(function* () {
      fake().enqueue({
        kind: "ok",
        text: "Hello there",
        chunks: ["Hello ", "there"],
        holdAfter: { deltas: 1, until: held }
      })
      const { strategy, entries } = yield* chainOf([providers()[name]])
      const seen: Array<string> = []
      const result = yield* strategy.streamText(ask, { prompt: "Say hi" }).pipe(
        Stream.tap((event) => Effect.sync(() => event._tag === "Delta" && seen.push(event.text))),
        Stream.runDrain,
        Effect.either
      )
      expect(seen).toEqual(["Hello "])
      expect(Either.isLeft(result) && result.left).toMatchObject({ _tag: "AiStreamFailed", kind: "timeout", deltas: 1 })
      // The rest is held until the fake has seen the connection closed (released first, it would finish the answer).
      const aborted = yield* Effect.promise(() => fake().nextClientAbort())
      expect(aborted.stream).toBe(true)
      expect(yield* Ref.get(entries)).toMatchObject([{ outcome: "timeout", errorKind: "timeout" }])
    }).pipe(Effect.ensuring(Effect.sync(() => release())))
  })

  it.live("interrupting the call closes the provider's connection", () =>
    Effect.gen(function* () {
      fake().enqueue({ kind: "hang" })
      const { strategy } = yield* chainOf([{ ...providers()[name], timeoutMs: 30_000 }])
      const fiber = yield* Effect.fork(collect(strategy.streamText(ask, { prompt: "wait" })))
      // Interrupted once the request is at the provider (not after a guessed delay).
      yield* eventually(
        Effect.sync(() => fake().requests.length),
        (count) => count > 0,
        "the request at the provider"
      )
      yield* Fiber.interrupt(fiber)
      const aborted = yield* Effect.promise(() => fake().nextClientAbort())
      expect(aborted.stream).toBe(true)
    })
  )
})

describe("the chain over the wire", () => {
  it.live("primary times out → the fallback answers", () =>
    Effect.gen(function* () {
      gemini.enqueue({ kind: "hang" })
      openai.enqueue({ kind: "ok", text: '{"opener":"From OpenAI","tone":"playful"}' })
      const p = providers()
      const { strategy, entries } = yield* chainOf([p.gemini, p.openai])
      const result = yield* strategy.generateObject(ask, { schema: Opener, prompt: "x" })
      expect(result.provider).toBe("gpt-4o")
      expect((yield* Ref.get(entries)).map((e) => e.outcome)).toEqual(["timeout", "ok"])
      // The timed-out request was aborted, not left running.
      const aborted = yield* Effect.promise(() => gemini.nextClientAbort())
      expect(aborted.path).toContain(":generateContent")
    })
  )

  it.live("429 → next; malformed JSON → next", () =>
    Effect.gen(function* () {
      gemini.enqueue({ kind: "status", status: 429 })
      openai.enqueue({ kind: "malformed" })
      anthropic.enqueue({ kind: "ok", text: '{"opener":"Third time","tone":"sincere"}' })
      const p = providers()
      const { strategy, entries } = yield* chainOf([p.gemini, p.openai, p.anthropic])
      expect((yield* strategy.generateObject(ask, { schema: Opener, prompt: "x" })).provider).toBe("claude-sonnet")
      expect((yield* Ref.get(entries)).map((e) => [e.provider, e.outcome, e.errorKind])).toEqual([
        ["gemini-flash", "error", "rate_limited"],
        ["gpt-4o", "error", "malformed"],
        ["claude-sonnet", "ok", undefined]
      ])
    })
  )

  it.live("404 (a wrong base URL, a model the provider does not serve) → the next provider answers", () =>
    Effect.gen(function* () {
      gemini.enqueue({ kind: "status", status: 404, message: "models/gemini-test is not found" })
      openai.enqueue({ kind: "ok", text: '{"opener":"Found here","tone":"playful"}' })
      const p = providers()
      const { strategy, entries } = yield* chainOf([p.gemini, p.openai])
      expect((yield* strategy.generateObject(ask, { schema: Opener, prompt: "x" })).provider).toBe("gpt-4o")
      expect((yield* Ref.get(entries)).map((e) => [e.provider, e.outcome, e.errorKind])).toEqual([
        ["gemini-flash", "error", "server"],
        ["gpt-4o", "ok", undefined]
      ])
    })
  )

  it.live("an invalid request (400) fails without burning the others", () =>
    Effect.gen(function* () {
      gemini.enqueue({ kind: "status", status: 400, message: "Invalid argument" })
      const p = providers()
      const { strategy } = yield* chainOf([p.gemini, p.openai])
      const error = yield* Effect.flip(strategy.generateObject(ask, { schema: Opener, prompt: "x" }))
      expect(error).toMatchObject({ _tag: "AiRejected", provider: "gemini-flash", status: 400 })
      expect(openai.requests).toHaveLength(0)
    })
  )

  it.live("all down: AiUnavailable lists every attempt", () =>
    Effect.gen(function* () {
      gemini.enqueue({ kind: "status", status: 500 })
      openai.enqueue({ kind: "status", status: 503 })
      anthropic.enqueue({ kind: "hang" })
      const p = providers()
      const { strategy } = yield* chainOf([p.gemini, p.openai, p.anthropic])
      const error = yield* Effect.flip(strategy.generateObject(ask, { schema: Opener, prompt: "x" }))
      expect(error).toEqual(
        expect.objectContaining({
          _tag: "AiUnavailable",
          attempts: [
            { provider: "gemini-flash", model: "gemini-test", outcome: "error", kind: "server", status: 500 },
            { provider: "gpt-4o", model: "gpt-test", outcome: "error", kind: "server", status: 503 },
            { provider: "claude-sonnet", model: "claude-test", outcome: "timeout", kind: "timeout" }
          ]
        })
      )
    })
  )

  it.live("a stream cut before its first delta falls back; cut after it is reported, not restarted", () =>
    Effect.gen(function* () {
      gemini.enqueue({ kind: "cut", afterChunks: 0, chunks: ["never"] })
      openai.enqueue({ kind: "ok", text: "Rescued", chunks: ["Res", "cued"] })
      const p = providers()
      const first = yield* chainOf([p.gemini, p.openai])
      expect(texts(yield* collect(first.strategy.streamText(ask, { prompt: "x" })))).toBe("Rescued")

      gemini.enqueue({ kind: "cut", afterChunks: 1, chunks: ["Half ", "never"] })
      const second = yield* chainOf([p.gemini, p.openai])
      const seen: Array<string> = []
      const result = yield* second.strategy.streamText(ask, { prompt: "x" }).pipe(
        Stream.tap((event) => Effect.sync(() => event._tag === "Delta" && seen.push(event.text))),
        Stream.runDrain,
        Effect.either
      )
      expect(seen).toEqual(["Half "])
      expect(Either.isLeft(result) && result.left).toMatchObject({
        _tag: "AiStreamFailed",
        provider: "gemini-flash",
        deltas: 1
      })
      expect(openai.requests).toHaveLength(1)
    })
  )

  it.live("the breaker opens after repeated failures (the provider is not called), then lets a trial through", () =>
    Effect.gen(function* () {
      gemini.setFallback({ kind: "status", status: 500 })
      openai.setFallback({ kind: "ok", text: '{"opener":"Backup","tone":"playful"}' })
      const p = providers()
      const { strategy, entries } = yield* chainOf([p.gemini, p.openai], { breaker: { failures: 2, cooldownMs: 300 } })
      for (let i = 0; i < 4; i++) yield* strategy.generateObject(ask, { schema: Opener, prompt: "x" })
      expect(gemini.requests).toHaveLength(2)
      expect((yield* Ref.get(entries)).filter((e) => e.outcome === "skipped")).toHaveLength(2)
      expect(yield* strategy.circuit("gemini-flash")).toBe("open")
      yield* Effect.sleep("350 millis")
      gemini.setFallback({ kind: "ok", text: '{"opener":"Back again","tone":"playful"}' })
      expect((yield* strategy.generateObject(ask, { schema: Opener, prompt: "x" })).provider).toBe("gemini-flash")
      expect(yield* strategy.circuit("gemini-flash")).toBe("closed")
    })
  )

  it.live("the spend cap answers before any provider is called", () =>
    Effect.gen(function* () {
      const p = providers()
      const { strategy, entries } = yield* chainOf([p.gemini], { dailyCapMicros: 100 })
      yield* Ref.set(entries, [
        {
          userId: ask.userId,
          feature: "test",
          provider: "gemini-flash",
          model: "gemini-test",
          inputTokens: 0,
          outputTokens: 0,
          costMicros: 100,
          latencyMs: 1,
          ttftMs: undefined,
          outcome: "ok",
          errorKind: undefined,
          at: new Date()
        }
      ])
      const error = yield* Effect.flip(strategy.generateObject(ask, { schema: Opener, prompt: "x" }))
      expect(error).toMatchObject({ _tag: "AiQuotaExceeded", spentMicros: 100, capMicros: 100 })
      const streamed = yield* Effect.either(collect(strategy.streamText(ask, { prompt: "x" })))
      expect(Either.isLeft(streamed) && streamed.left._tag).toBe("AiQuotaExceeded")
      expect(gemini.requests).toHaveLength(0)
    })
  )
})
