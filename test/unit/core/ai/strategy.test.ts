/**
 * The chain's rules with scripted providers and the TestClock: fallback, no fallback on invalid
 * requests, corrective retry, circuit breaker, spend cap, streams committed after the first delta.
 * (The same rules against the real SDKs and wire fakes: test/integration/ai.)
 */
import { describe, expect, it } from "@effect/vitest"
import {
  Chunk,
  Clock,
  Deferred,
  Duration,
  Effect,
  Either,
  Fiber,
  Layer,
  Queue,
  Ref,
  Schema,
  Stream,
  TestClock
} from "effect"
import { AiLedger, type LedgerEntry } from "../../../../src/core/ai/ledger.ts"
import {
  type AiProvider,
  ProviderError,
  type ProviderId,
  type ProviderRequest,
  type StreamEvent
} from "../../../../src/core/ai/provider.ts"
import { reservationLeaseMs } from "../../../../src/core/ai/spend-cap.ts"
import { AiStrategy, type AiStrategyOptions } from "../../../../src/core/ai/strategy.ts"
import { DEFAULT_PRICES } from "../../../../src/core/ai/ledger.ts"
import { recordingTracer } from "../../../support/tracing.ts"

type Script =
  | { readonly _tag: "answer"; readonly text: string; readonly input?: number; readonly output?: number }
  | { readonly _tag: "fail"; readonly kind: ProviderError["kind"]; readonly status?: number }
  | { readonly _tag: "hang" }
  | { readonly _tag: "stream"; readonly deltas: ReadonlyArray<string>; readonly failAfter?: number }

interface Scripted extends AiProvider {
  readonly calls: Ref.Ref<ReadonlyArray<ProviderRequest>>
  readonly closed: Ref.Ref<number>
}

const scripted = (id: ProviderId, scripts: ReadonlyArray<Script>, fallback?: Script) =>
  Effect.gen(function* () {
    const calls = yield* Ref.make<ReadonlyArray<ProviderRequest>>([])
    const closed = yield* Ref.make(0)
    const next = (request: ProviderRequest) =>
      Ref.modify(calls, (all): [Script, ReadonlyArray<ProviderRequest>] => [
        scripts[all.length] ?? fallback ?? { _tag: "answer", text: "{}" },
        [...all, request]
      ])
    const failure = (script: Extract<Script, { _tag: "fail" }>) =>
      new ProviderError({
        provider: id,
        kind: script.kind,
        message: script.kind,
        ...(script.status === undefined ? {} : { status: script.status })
      })
    const provider: Scripted = {
      id,
      model: `${id}-model`,
      timeoutMs: 1_000,
      calls,
      closed,
      generate: (request) =>
        Effect.flatMap(next(request), (script) => {
          switch (script._tag) {
            case "answer":
              return Effect.succeed({
                text: script.text,
                usage: { inputTokens: script.input ?? 100, outputTokens: script.output ?? 50 }
              })
            case "fail":
              return Effect.fail(failure(script))
            default:
              return Effect.never
          }
        }),
      stream: (request) =>
        Stream.unwrap(
          Effect.map(next(request), (script): Stream.Stream<StreamEvent, ProviderError> => {
            switch (script._tag) {
              case "fail":
                return Stream.fail(failure(script))
              case "hang":
                return Stream.never
              case "answer":
                return Stream.make<[StreamEvent]>({ _tag: "Delta", text: script.text })
              case "stream": {
                const deltas = script.deltas.map((text): StreamEvent => ({ _tag: "Delta", text }))
                const body =
                  script.failAfter === undefined
                    ? Stream.fromIterable([
                        ...deltas,
                        { _tag: "Usage", usage: { inputTokens: 10, outputTokens: 20 } } satisfies StreamEvent
                      ])
                    : Stream.fromIterable(deltas.slice(0, script.failAfter)).pipe(
                        Stream.concat(Stream.fail(new ProviderError({ provider: id, kind: "network", message: "cut" })))
                      )
                return body
              }
            }
          })
        ).pipe(Stream.ensuring(Ref.update(closed, (n) => n + 1)))
    }
    return provider
  })

const Answer = Schema.Struct({ opener: Schema.String.pipe(Schema.minLength(1)) })

const setup = (providers: ReadonlyArray<AiProvider>, overrides: Partial<AiStrategyOptions> = {}) =>
  Effect.gen(function* () {
    const entries = yield* Ref.make<ReadonlyArray<LedgerEntry>>([])
    const ledger = AiLedger.inMemory(entries)
    const strategy = yield* AiStrategy.make({
      providers,
      prices: DEFAULT_PRICES,
      breaker: { failures: 3, cooldownMs: 30_000 },
      dailyCapMicros: 0,
      ...overrides
    }).pipe(Effect.provide(Layer.succeed(AiLedger, ledger)))
    return { strategy, entries, ledger }
  })

const ask = { feature: "test", userId: "user_1" }

const collect = (stream: Stream.Stream<unknown, unknown>) =>
  Effect.map(Stream.runCollect(stream), (chunk) => Chunk.toReadonlyArray(chunk))
const request = { schema: Answer, prompt: "Write an opener" }

describe("AiStrategy.generateObject", () => {
  it.effect("the primary answers: value, metadata, one ledger row with the cost", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [
        { _tag: "answer", text: '{"opener":"Hi"}', input: 1000, output: 200 }
      ])
      const openai = yield* scripted("gpt-4o", [])
      const { strategy, entries } = yield* setup([gemini, openai])
      const result = yield* strategy.generateObject(ask, request)
      expect(result.value).toEqual({ opener: "Hi" })
      expect(result).toMatchObject({ provider: "gemini-flash", model: "gemini-flash-model", local: false })
      // 1000 × 0.30 + 200 × 2.50 micro-units per token
      expect(result.costMicros).toBe(800)
      expect(yield* Ref.get(openai.calls)).toHaveLength(0)
      expect(yield* Ref.get(entries)).toMatchObject([
        {
          provider: "gemini-flash",
          outcome: "ok",
          inputTokens: 1000,
          outputTokens: 200,
          costMicros: 800,
          userId: "user_1"
        }
      ])
      const sent = (yield* Ref.get(gemini.calls))[0]
      expect(sent?.json?.schema).toMatchObject({ type: "object", required: ["opener"] })
    })
  )

  it.effect("a timeout moves on to the next provider", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [{ _tag: "hang" }])
      const openai = yield* scripted("gpt-4o", [{ _tag: "answer", text: '{"opener":"Fallback"}' }])
      const { strategy, entries } = yield* setup([gemini, openai])
      const fiber = yield* Effect.fork(strategy.generateObject(ask, request))
      yield* TestClock.adjust(Duration.millis(1_001))
      const result = yield* Fiber.join(fiber)
      expect(result).toMatchObject({ value: { opener: "Fallback" }, provider: "gpt-4o" })
      expect((yield* Ref.get(entries)).map((e) => [e.provider, e.outcome, e.errorKind])).toEqual([
        ["gemini-flash", "timeout", "timeout"],
        ["gpt-4o", "ok", undefined]
      ])
    })
  )

  it.effect("429 and 5xx move on; an invalid request stops the chain", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [{ _tag: "fail", kind: "rate_limited", status: 429 }])
      const openai = yield* scripted("gpt-4o", [{ _tag: "fail", kind: "server", status: 503 }])
      const claude = yield* scripted("claude-sonnet", [{ _tag: "answer", text: '{"opener":"Third"}' }])
      const { strategy } = yield* setup([gemini, openai, claude])
      expect((yield* strategy.generateObject(ask, request)).provider).toBe("claude-sonnet")

      const rejecting = yield* scripted("gemini-flash", [{ _tag: "fail", kind: "invalid_request", status: 400 }])
      const untouched = yield* scripted("gpt-4o", [])
      const second = yield* setup([rejecting, untouched])
      const error = yield* Effect.flip(second.strategy.generateObject(ask, request))
      expect(error).toMatchObject({ _tag: "AiRejected", provider: "gemini-flash", status: 400 })
      expect(yield* Ref.get(untouched.calls)).toHaveLength(0)
    })
  )

  it.effect("all down: one typed error listing every attempt", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [{ _tag: "fail", kind: "server", status: 500 }])
      const openai = yield* scripted("gpt-4o", [{ _tag: "fail", kind: "network" }])
      const claude = yield* scripted("claude-sonnet", [{ _tag: "fail", kind: "auth", status: 401 }])
      const { strategy } = yield* setup([gemini, openai, claude])
      const error = yield* Effect.flip(strategy.generateObject(ask, request))
      expect(error).toEqual(
        expect.objectContaining({
          _tag: "AiUnavailable",
          attempts: [
            { provider: "gemini-flash", model: "gemini-flash-model", outcome: "error", kind: "server", status: 500 },
            { provider: "gpt-4o", model: "gpt-4o-model", outcome: "error", kind: "network" },
            { provider: "claude-sonnet", model: "claude-sonnet-model", outcome: "error", kind: "auth", status: 401 }
          ]
        })
      )
    })
  )

  it.effect("invalid output gets one corrective retry on the same provider", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [
        { _tag: "answer", text: '{"opener": ""}' },
        { _tag: "answer", text: '{"opener":"Fixed"}' }
      ])
      const { strategy, entries } = yield* setup([gemini])
      const result = yield* strategy.generateObject(ask, request)
      expect(result.value).toEqual({ opener: "Fixed" })
      const calls = yield* Ref.get(gemini.calls)
      expect(calls).toHaveLength(2)
      expect(calls[1]?.prompt).toContain("Your previous answer was not valid")
      // Both calls' tokens are paid for.
      expect(result.usage).toEqual({ inputTokens: 200, outputTokens: 100 })
      expect(yield* Ref.get(entries)).toHaveLength(1)
    })
  )

  it.effect("an answer in a code fence or in prose: the object inside is read, no corrective retry", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [
        { _tag: "answer", text: '```json\n{"opener":"Fenced"}\n```' },
        { _tag: "answer", text: 'Here is "one" for you:\n{"opener":"Wrapped"}\nEnjoy!' },
        { _tag: "answer", text: '{"opener":"One"}\nor\n{"opener":"Two"}' },
        { _tag: "answer", text: '{"opener":"Fixed"}' }
      ])
      const { strategy, entries } = yield* setup([gemini])
      expect((yield* strategy.generateObject(ask, request)).value).toEqual({ opener: "Fenced" })
      expect((yield* strategy.generateObject(ask, request)).value).toEqual({ opener: "Wrapped" })
      expect(yield* Ref.get(gemini.calls)).toHaveLength(2)
      // Two objects: which one is meant is a guess, so the answer is corrected.
      expect((yield* strategy.generateObject(ask, request)).value).toEqual({ opener: "Fixed" })
      const calls = yield* Ref.get(gemini.calls)
      expect(calls).toHaveLength(4)
      expect(calls[3]?.prompt).toContain("2 JSON objects in the answer")
      expect(yield* Ref.get(entries)).toHaveLength(3)
    })
  )

  it.effect("the corrective retry reserves its own cost: when the cap cannot take it, AiInvalidOutput without it", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [
        { _tag: "answer", text: '{"opener": ""}' },
        { _tag: "answer", text: '{"opener":"Fixed"}' }
      ])
      // The first try reserves 2,524 (79 input, 1,000 output tokens); the retry's longer prompt more: 4,000 takes one.
      const { strategy } = yield* setup([gemini], { dailyCapMicros: 4_000 })
      const error = yield* Effect.flip(strategy.generateObject(ask, { ...request, maxOutputTokens: 1_000 }))
      expect(error._tag).toBe("AiInvalidOutput")
      expect(yield* Ref.get(gemini.calls)).toHaveLength(1)
      // With room for both, the retry goes ahead.
      const again = yield* scripted("gemini-flash", [
        { _tag: "answer", text: '{"opener": ""}' },
        { _tag: "answer", text: '{"opener":"Fixed"}' }
      ])
      const roomy = yield* setup([again], { dailyCapMicros: 6_000 })
      const fixed = yield* roomy.strategy.generateObject(ask, { ...request, maxOutputTokens: 1_000 })
      expect(fixed.value).toEqual({ opener: "Fixed" })
      expect(yield* Ref.get(again.calls)).toHaveLength(2)
    })
  )

  it.effect("invalid twice: AiInvalidOutput, no third call", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [
        { _tag: "answer", text: "not json" },
        { _tag: "answer", text: '{"wrong":true}' }
      ])
      const openai = yield* scripted("gpt-4o", [])
      const { strategy } = yield* setup([gemini, openai])
      const error = yield* Effect.flip(strategy.generateObject(ask, request))
      expect(error._tag).toBe("AiInvalidOutput")
      expect(yield* Ref.get(gemini.calls)).toHaveLength(2)
      expect(yield* Ref.get(openai.calls)).toHaveLength(0)
    })
  )

  it.effect("an answer that stays invalid is billed: both calls' tokens in the ledger, counted by the cap", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [
        { _tag: "answer", text: "not json", input: 1000, output: 200 },
        { _tag: "answer", text: '{"wrong":true}', input: 1100, output: 100 }
      ])
      const { strategy, entries } = yield* setup([gemini], { dailyCapMicros: 100_000 })
      expect((yield* Effect.flip(strategy.generateObject(ask, request)))._tag).toBe("AiInvalidOutput")
      // (1000 + 1100) × 0.30 + (200 + 100) × 2.50 micro-units per token
      expect(yield* Ref.get(entries)).toMatchObject([
        { outcome: "error", errorKind: "invalid_output", inputTokens: 2100, outputTokens: 300, costMicros: 1380 }
      ])
      const ledger = AiLedger.inMemory(entries)
      expect(yield* ledger.spentSince("user_1", new Date(0))).toBe(1380)
    })
  )

  it.effect("a corrective retry that fails still bills the first answer; the chain moves on", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [
        { _tag: "answer", text: "not json", input: 1000, output: 200 },
        { _tag: "fail", kind: "server", status: 503 }
      ])
      const openai = yield* scripted("gpt-4o", [], { _tag: "answer", text: '{"opener":"Backup"}' })
      const { strategy, entries } = yield* setup([gemini, openai])
      expect((yield* strategy.generateObject(ask, request)).provider).toBe("gpt-4o")
      expect(yield* Ref.get(entries)).toMatchObject([
        { provider: "gemini-flash", outcome: "error", errorKind: "server", inputTokens: 1000, outputTokens: 200 },
        { provider: "gpt-4o", outcome: "ok" }
      ])
    })
  )

  it.effect("the circuit opens after consecutive failures, skips the provider, then lets one trial through", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [], { _tag: "fail", kind: "server", status: 500 })
      const openai = yield* scripted("gpt-4o", [], { _tag: "answer", text: '{"opener":"Backup"}' })
      const { strategy, entries } = yield* setup([gemini, openai])
      for (let i = 0; i < 3; i++) yield* strategy.generateObject(ask, request)
      expect(yield* strategy.circuit("gemini-flash")).toBe("open")
      yield* strategy.generateObject(ask, request)
      expect(yield* Ref.get(gemini.calls)).toHaveLength(3)
      expect((yield* Ref.get(entries)).filter((e) => e.outcome === "skipped")).toHaveLength(1)

      yield* TestClock.adjust(Duration.seconds(31))
      expect(yield* strategy.circuit("gemini-flash")).toBe("half-open")
      yield* strategy.generateObject(ask, request)
      expect(yield* Ref.get(gemini.calls)).toHaveLength(4)
      expect(yield* strategy.circuit("gemini-flash")).toBe("open")
    })
  )

  it.effect("a successful trial closes the circuit", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted(
        "gemini-flash",
        [
          { _tag: "fail", kind: "server" },
          { _tag: "fail", kind: "server" },
          { _tag: "fail", kind: "server" }
        ],
        { _tag: "answer", text: '{"opener":"Back"}' }
      )
      const openai = yield* scripted("gpt-4o", [], { _tag: "answer", text: '{"opener":"Backup"}' })
      const { strategy } = yield* setup([gemini, openai])
      for (let i = 0; i < 3; i++) yield* strategy.generateObject(ask, request)
      yield* TestClock.adjust(Duration.seconds(31))
      expect((yield* strategy.generateObject(ask, request)).provider).toBe("gemini-flash")
      expect(yield* strategy.circuit("gemini-flash")).toBe("closed")
    })
  )

  it.effect("an attempt interrupted by the caller is recorded as cancelled", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [{ _tag: "hang" }])
      const { strategy, entries } = yield* setup([gemini])
      const fiber = yield* Effect.fork(strategy.generateObject(ask, request))
      yield* TestClock.adjust(Duration.millis(100))
      yield* Fiber.interrupt(fiber)
      expect(yield* Ref.get(entries)).toMatchObject([
        { provider: "gemini-flash", outcome: "cancelled", latencyMs: 100 }
      ])
    })
  )

  it.effect("the daily spend cap answers before any provider is called", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [], {
        _tag: "answer",
        text: '{"opener":"Hi"}',
        input: 1000,
        output: 1000
      })
      // Each call may cost up to 2,524 (79 input and 1,000 output tokens) and costs 2,800.
      const bounded = { ...request, maxOutputTokens: 1_000 }
      const { strategy } = yield* setup([gemini], { dailyCapMicros: 8_000 })
      yield* strategy.generateObject(ask, bounded)
      yield* strategy.generateObject(ask, bounded)
      // 5,600 spent: under the cap, but not by this call's upper bound.
      const error = yield* Effect.flip(strategy.generateObject(ask, bounded))
      expect(error).toMatchObject({ _tag: "AiQuotaExceeded", spentMicros: 5_600, capMicros: 8_000 })
      if (error._tag === "AiQuotaExceeded") expect(error.retryAfterSeconds).toBeGreaterThan(0)
      expect(yield* Ref.get(gemini.calls)).toHaveLength(2)
      // Another user is not capped by this one's spend.
      expect((yield* strategy.generateObject({ ...ask, userId: "user_2" }, bounded)).provider).toBe("gemini-flash")
    })
  )
})

describe("AiStrategy: the spend cap under concurrency", () => {
  it.effect("calls at once are admitted only while spent + reserved + their upper bound fit; reservations settle", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const calls = yield* Ref.make(0)
      // Answers once the gate opens: the admitted calls stay in flight meanwhile.
      const gated: AiProvider = {
        id: "gemini-flash",
        model: "gemini-flash-model",
        timeoutMs: 60_000,
        generate: () =>
          Effect.zipRight(
            Ref.update(calls, (n) => n + 1),
            Effect.as(Deferred.await(gate), { text: '{"opener":"Hi"}', usage: { inputTokens: 100, outputTokens: 50 } })
          ),
        stream: () => Stream.empty
      }
      // 2,524 reserved per call (see above): three fit under 8,000, a fourth does not.
      const { strategy, entries } = yield* setup([gated], { dailyCapMicros: 8_000 })
      const results = yield* Queue.unbounded<Either.Either<unknown, unknown>>()
      yield* Effect.forEach(
        Array.from({ length: 10 }),
        () =>
          strategy.generateObject(ask, { ...request, maxOutputTokens: 1_000 }).pipe(
            Effect.either,
            Effect.flatMap((result) => Queue.offer(results, result)),
            Effect.fork
          ),
        { discard: true }
      )
      // The refused ones answer while the admitted ones wait at the gate.
      const refused = yield* Queue.takeN(results, 7)
      expect(Chunk.toReadonlyArray(refused).map((r) => Either.isLeft(r) && r.left)).toEqual(
        Array.from({ length: 7 }, () => expect.objectContaining({ _tag: "AiQuotaExceeded", capMicros: 8_000 }))
      )
      expect(yield* Ref.get(calls)).toBe(3)
      yield* Deferred.succeed(gate, undefined)
      const admitted = yield* Queue.takeN(results, 3)
      expect(Chunk.toReadonlyArray(admitted).every(Either.isRight)).toBe(true)
      // Settled: the ledger has the three actual costs (155 each); nothing stays reserved.
      expect((yield* Ref.get(entries)).map((entry) => entry.costMicros)).toEqual([155, 155, 155])
      const next = yield* Effect.flip(strategy.generateObject(ask, { ...request, maxOutputTokens: 1_000_000 }))
      expect(next).toMatchObject({ _tag: "AiQuotaExceeded", spentMicros: 465 })
    })
  )
})

describe("AiStrategy: spend reservations and their lease", () => {
  const bounded = { ...request, maxOutputTokens: 1_000 }

  it.effect("a reservation its call never gave back (a killed process) stops counting once its lease passes", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [], { _tag: "answer", text: '{"opener":"Hi"}' })
      const { strategy, ledger } = yield* setup([gemini], { dailyCapMicros: 8_000 })
      const leaseMs = reservationLeaseMs([gemini.timeoutMs])
      const now = yield* Clock.currentTimeMillis
      // What a process killed mid-call leaves behind: admitted, then never released nor renewed.
      const held = yield* ledger.reserve({
        userId: "user_1",
        since: new Date(0),
        estimateMicros: 6_000,
        capMicros: 8_000,
        expiresAt: new Date(now + leaseMs)
      })
      expect(held._tag).toBe("Admitted")
      // 6,000 held + this call's 2,524 > 8,000: refused while the lease runs.
      expect(yield* Effect.flip(strategy.generateObject(ask, bounded))).toMatchObject({
        _tag: "AiQuotaExceeded",
        spentMicros: 6_000
      })
      yield* TestClock.adjust(Duration.millis(leaseMs - 1))
      expect((yield* Effect.flip(strategy.generateObject(ask, bounded)))._tag).toBe("AiQuotaExceeded")
      // The lease passed: the dead call's reservation no longer counts, the next call is admitted.
      yield* TestClock.adjust(Duration.millis(1))
      expect((yield* strategy.generateObject(ask, bounded)).provider).toBe("gemini-flash")
      expect(yield* ledger.spentSince("user_1", new Date(0))).toBe(155)
      expect(yield* Ref.get(gemini.calls)).toHaveLength(1)
    })
  )

  it.effect("a call that runs longer than a lease keeps its reservation: it is renewed while the call lives", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const firstDelta = yield* Deferred.make<void>()
      // A stream that writes one delta, then waits for the gate (no timeout after the first delta).
      const slow: AiProvider = {
        id: "gemini-flash",
        model: "gemini-flash-model",
        timeoutMs: 1_000,
        generate: () => Effect.succeed({ text: '{"opener":"Hi"}', usage: { inputTokens: 100, outputTokens: 50 } }),
        stream: () =>
          Stream.concat(
            Stream.make<[StreamEvent]>({ _tag: "Delta", text: "Hey" }),
            Stream.fromEffect(
              Effect.as(Deferred.await(gate), {
                _tag: "Usage",
                usage: { inputTokens: 10, outputTokens: 20 }
              } satisfies StreamEvent)
            )
          )
      }
      // The stream reserves ~2,521 and the next call 2,524: one at a time under 4,000.
      const { strategy, ledger } = yield* setup([slow], { dailyCapMicros: 4_000 })
      const leaseMs = reservationLeaseMs([slow.timeoutMs])
      const streaming = yield* strategy.streamText(ask, { prompt: "Say hi", maxOutputTokens: 1_000 }).pipe(
        Stream.tap((event) => (event._tag === "Delta" ? Deferred.succeed(firstDelta, undefined) : Effect.void)),
        Stream.runDrain,
        Effect.fork
      )
      yield* Deferred.await(firstDelta)
      yield* TestClock.adjust(Duration.millis(leaseMs * 3))
      // Three leases later the stream still holds its reservation.
      expect(yield* Effect.flip(strategy.generateObject(ask, bounded))).toMatchObject({ _tag: "AiQuotaExceeded" })
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(streaming)
      // Released when the stream ended: only its actual cost (53) counts.
      expect(yield* ledger.spentSince("user_1", new Date(0))).toBe(53)
      expect((yield* strategy.generateObject(ask, bounded)).provider).toBe("gemini-flash")
    })
  )

  it.effect("a call gives its reservation back as soon as it ends: answered, failed or interrupted", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [
        { _tag: "answer", text: '{"opener":"Hi"}' },
        { _tag: "fail", kind: "invalid_request", status: 400 },
        { _tag: "hang" }
      ])
      const { strategy, ledger } = yield* setup([gemini], { dailyCapMicros: 3_000 })
      const spent = ledger.spentSince("user_1", new Date(0))
      yield* strategy.generateObject(ask, bounded)
      expect(yield* spent).toBe(155)
      expect((yield* Effect.flip(strategy.generateObject(ask, bounded)))._tag).toBe("AiRejected")
      expect(yield* spent).toBe(155)
      const hanging = yield* Effect.fork(strategy.generateObject(ask, bounded))
      yield* TestClock.adjust(Duration.millis(100))
      expect(yield* Ref.get(gemini.calls)).toHaveLength(3)
      expect(yield* spent).toBe(155 + 2_524)
      yield* Fiber.interrupt(hanging)
      expect(yield* spent).toBe(155)
    })
  )
})

describe("AiStrategy.streamText", () => {
  it.effect("deltas, then Completed with usage and cost", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [{ _tag: "stream", deltas: ["Hey ", "there"] }])
      const { strategy, entries } = yield* setup([gemini])
      const events = yield* collect(strategy.streamText(ask, { prompt: "hi" }))
      expect(events).toEqual([
        { _tag: "Started", provider: "gemini-flash", model: "gemini-flash-model", local: false },
        { _tag: "Delta", text: "Hey " },
        { _tag: "Delta", text: "there" },
        expect.objectContaining({
          _tag: "Completed",
          provider: "gemini-flash",
          usage: { inputTokens: 10, outputTokens: 20 },
          costMicros: 53
        })
      ])
      expect(yield* Ref.get(entries)).toMatchObject([{ outcome: "ok", inputTokens: 10, outputTokens: 20 }])
      expect(yield* Ref.get(gemini.closed)).toBe(1)
    })
  )

  it.effect(
    "the thinking budget of a call reaches the provider, streamed or not (and stays unset when not given)",
    () =>
      Effect.gen(function* () {
        const gemini = yield* scripted("gemini-flash", [
          { _tag: "stream", deltas: ["Hey"] },
          { _tag: "stream", deltas: ["Hey"] },
          { _tag: "answer", text: JSON.stringify({ opener: "Hi" }) }
        ])
        const { strategy } = yield* setup([gemini])
        yield* collect(strategy.streamText(ask, { prompt: "hi", thinkingBudget: 0 }))
        yield* collect(strategy.streamText(ask, { prompt: "hi" }))
        yield* strategy.generateObject(ask, { schema: Answer, prompt: "hi", thinkingBudget: 0 })
        const calls = yield* Ref.get(gemini.calls)
        expect(calls.map((call) => call.thinkingBudget)).toEqual([0, undefined, 0])
        expect(calls[1]).not.toHaveProperty("thinkingBudget")
      })
  )

  it.effect("a failure before the first delta falls back; the failed request is closed", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [{ _tag: "stream", deltas: [], failAfter: 0 }])
      const openai = yield* scripted("gpt-4o", [{ _tag: "stream", deltas: ["From ", "OpenAI"] }])
      const { strategy } = yield* setup([gemini, openai])
      const events = yield* collect(strategy.streamText(ask, { prompt: "hi" }))
      expect(events.slice(0, 3)).toEqual([
        { _tag: "Started", provider: "gpt-4o", model: "gpt-4o-model", local: false },
        { _tag: "Delta", text: "From " },
        { _tag: "Delta", text: "OpenAI" }
      ])
      expect(events[3]).toMatchObject({ _tag: "Completed", provider: "gpt-4o" })
      expect(yield* Ref.get(gemini.closed)).toBe(1)
    })
  )

  it.effect("no first delta within the timeout falls back", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [{ _tag: "hang" }])
      const openai = yield* scripted("gpt-4o", [{ _tag: "stream", deltas: ["Late"] }])
      const { strategy } = yield* setup([gemini, openai])
      const fiber = yield* Effect.fork(collect(strategy.streamText(ask, { prompt: "hi" })))
      yield* TestClock.adjust(Duration.millis(1_001))
      const events = yield* Fiber.join(fiber)
      expect(events[1]).toEqual({ _tag: "Delta", text: "Late" })
      expect(yield* Ref.get(gemini.closed)).toBe(1)
    })
  )

  it.effect("a failure after the first delta is reported, not restarted elsewhere", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [{ _tag: "stream", deltas: ["Hey ", "there"], failAfter: 1 }])
      const openai = yield* scripted("gpt-4o", [])
      const { strategy, entries } = yield* setup([gemini, openai])
      const seen = yield* Ref.make<ReadonlyArray<unknown>>([])
      const result = yield* strategy.streamText(ask, { prompt: "hi" }).pipe(
        Stream.tap((event) => Ref.update(seen, (all) => [...all, event])),
        Stream.runDrain,
        Effect.either
      )
      expect((yield* Ref.get(seen)).slice(1)).toEqual([{ _tag: "Delta", text: "Hey " }])
      expect(Either.isLeft(result) && result.left).toMatchObject({
        _tag: "AiStreamFailed",
        provider: "gemini-flash",
        deltas: 1
      })
      expect(yield* Ref.get(openai.calls)).toHaveLength(0)
      expect(yield* Ref.get(entries)).toMatchObject([
        { provider: "gemini-flash", outcome: "error", errorKind: "network" }
      ])
    })
  )

  it.effect("interrupting the consumer closes the provider's stream and records a cancelled call", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [{ _tag: "stream", deltas: ["one "] }])
      const slow: AiProvider = {
        ...gemini,
        stream: (req) => Stream.concat(gemini.stream(req), Stream.never)
      }
      const { strategy, entries } = yield* setup([slow])
      const first = yield* Effect.fork(
        strategy.streamText(ask, { prompt: "hi" }).pipe(Stream.take(2), Stream.runCollect)
      )
      yield* Fiber.join(first)
      expect(yield* Ref.get(gemini.closed)).toBe(1)
      expect(yield* Ref.get(entries)).toMatchObject([{ outcome: "cancelled" }])
    })
  )
})

describe("AiStrategy.streamObject", () => {
  it.effect("the JSON text as it is written, then Completed with the decoded value; the request asks for JSON", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [{ _tag: "stream", deltas: ['{"ope', 'ner":"Hi"}'] }])
      const { strategy, entries } = yield* setup([gemini])
      const events = yield* collect(strategy.streamObject(ask, request))
      expect(events).toEqual([
        { _tag: "Started", provider: "gemini-flash", model: "gemini-flash-model", local: false },
        { _tag: "Delta", text: '{"ope' },
        { _tag: "Delta", text: 'ner":"Hi"}' },
        expect.objectContaining({
          _tag: "Completed",
          value: { opener: "Hi" },
          usage: { inputTokens: 10, outputTokens: 20 }
        })
      ])
      const [sent] = yield* Ref.get(gemini.calls)
      expect(sent?.json?.schema).toMatchObject({ type: "object", required: ["opener"] })
      expect(yield* Ref.get(entries)).toMatchObject([{ outcome: "ok", inputTokens: 10, outputTokens: 20 }])
    })
  )

  it.effect("a failure before the first delta falls back to the next provider", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [{ _tag: "fail", kind: "server", status: 503 }])
      const openai = yield* scripted("gpt-4o", [{ _tag: "stream", deltas: ['{"opener":"From OpenAI"}'] }])
      const { strategy } = yield* setup([gemini, openai])
      const events = yield* collect(strategy.streamObject(ask, request))
      expect(events.at(-1)).toMatchObject({ _tag: "Completed", provider: "gpt-4o", value: { opener: "From OpenAI" } })
    })
  )

  it.effect("an answer that does not decode: one corrective retry on the same provider, its usage added", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [
        { _tag: "stream", deltas: ['{"opener":', '""}'] },
        { _tag: "answer", text: '{"opener":"Fixed"}', input: 100, output: 50 }
      ])
      const openai = yield* scripted("gpt-4o", [])
      const { strategy, entries } = yield* setup([gemini, openai])
      const events = yield* collect(strategy.streamObject(ask, request))
      expect(events.at(-1)).toMatchObject({
        _tag: "Completed",
        provider: "gemini-flash",
        value: { opener: "Fixed" },
        usage: { inputTokens: 110, outputTokens: 70 }
      })
      const calls = yield* Ref.get(gemini.calls)
      expect(calls[1]?.prompt).toContain("Your previous answer was not valid")
      expect(yield* Ref.get(openai.calls)).toHaveLength(0)
      expect(yield* Ref.get(entries)).toMatchObject([{ outcome: "ok" }, { outcome: "ok", inputTokens: 100 }])
    })
  )

  it.effect("an answer streamed in a code fence: the object inside is read, no corrective retry", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [
        { _tag: "stream", deltas: ["```json\n", '{"opener":', '"Hi"}', "\n```"] }
      ])
      const { strategy, entries } = yield* setup([gemini])
      const events = yield* collect(strategy.streamObject(ask, request))
      expect(events.at(-1)).toMatchObject({ _tag: "Completed", value: { opener: "Hi" } })
      expect(yield* Ref.get(gemini.calls)).toHaveLength(1)
      expect(yield* Ref.get(entries)).toMatchObject([{ outcome: "ok", inputTokens: 10, outputTokens: 20 }])
    })
  )

  it.effect("still invalid after the retry: AiInvalidOutput, both answers in the ledger, no other provider", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [
        { _tag: "stream", deltas: ["not json"] },
        { _tag: "answer", text: '{"opener":""}' }
      ])
      const openai = yield* scripted("gpt-4o", [])
      const { strategy, entries } = yield* setup([gemini, openai])
      const result = yield* Effect.either(collect(strategy.streamObject(ask, request)))
      expect(Either.isLeft(result) && result.left).toMatchObject({ _tag: "AiInvalidOutput", provider: "gemini-flash" })
      expect(yield* Ref.get(gemini.calls)).toHaveLength(2)
      expect(yield* Ref.get(openai.calls)).toHaveLength(0)
      expect(yield* Ref.get(entries)).toMatchObject([
        { outcome: "ok" },
        { outcome: "error", errorKind: "invalid_output" }
      ])
    })
  )

  it.effect("a failure after the first delta is AiStreamFailed (the caller falls back itself)", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [{ _tag: "stream", deltas: ['{"op', 'ener"'], failAfter: 1 }])
      const { strategy } = yield* setup([gemini])
      const result = yield* Effect.either(collect(strategy.streamObject(ask, request)))
      expect(Either.isLeft(result) && result.left).toMatchObject({ _tag: "AiStreamFailed", deltas: 1 })
    })
  )
})

describe("observability", () => {
  it.effect("one span per attempt with provider, model and outcome: the trace shows the fallback path", () =>
    Effect.gen(function* () {
      const { tracer, spans } = recordingTracer()
      const gemini = yield* scripted("gemini-flash", [{ _tag: "fail", kind: "rate_limited", status: 429 }])
      const openai = yield* scripted("gpt-4o", [{ _tag: "answer", text: '{"opener":"Hi"}' }])
      const { strategy } = yield* setup([gemini, openai])
      yield* strategy.generateObject(ask, request).pipe(Effect.withTracer(tracer))
      const attempts = spans.filter((span) => span.name === "ai.attempt")
      expect(
        attempts.map((span) => [
          span.attributes.get("ai.provider"),
          span.attributes.get("ai.model"),
          span.attributes.get("ai.outcome")
        ])
      ).toEqual([
        ["gemini-flash", "gemini-flash-model", "rate_limited"],
        ["gpt-4o", "gpt-4o-model", "ok"]
      ])
      expect(attempts.every((span) => span.ended && span.attributes.get("ai.feature") === "test")).toBe(true)
    })
  )

  it.effect("a provider skipped by its open circuit has its attempt span too (not the caller's span)", () =>
    Effect.gen(function* () {
      const gemini = yield* scripted("gemini-flash", [], { _tag: "fail", kind: "server", status: 500 })
      const openai = yield* scripted("gpt-4o", [], { _tag: "answer", text: '{"opener":"Backup"}' })
      const { strategy } = yield* setup([gemini, openai])
      for (let i = 0; i < 3; i++) yield* strategy.generateObject(ask, request)
      const { tracer, spans } = recordingTracer()
      yield* strategy.generateObject(ask, request).pipe(Effect.withSpan("caller"), Effect.withTracer(tracer))
      expect(
        spans.map((span) => [
          span.name,
          span.parentName,
          span.attributes.get("ai.provider"),
          span.attributes.get("ai.outcome")
        ])
      ).toEqual([
        ["caller", undefined, undefined, undefined],
        ["ai.attempt", "caller", "gemini-flash", "skipped"],
        ["ai.attempt", "caller", "gpt-4o", "ok"]
      ])
    })
  )
})
