/**
 * The AI strategy: the providers in order (primary, then fallbacks), each attempt with its own
 * timeout, built as a chain of `orElse`-style recoveries. Transient failures move on; a request
 * a provider calls invalid stops the chain; a stream falls back only before its first delta; a
 * provider that keeps failing is skipped while its circuit is open. Every attempt is a span and
 * a ledger entry; each call's estimated cost is reserved against the daily spend cap before any
 * provider is called.
 */
import { Chunk, Clock, Context, Data, Duration, Effect, Exit, JSONSchema, Option, Schema, Scope, Stream } from "effect"
import { answerOf } from "./answer-json.ts"
import { makeBreaker, type BreakerOptions } from "./breaker.ts"
import {
  AiInvalidOutput,
  type AiQuotaExceeded,
  AiRejected,
  AiStreamFailed,
  AiUnavailable,
  type AiError,
  type AttemptRecord
} from "./errors.ts"
import { AiLedger, costMicros, type CallOutcome, type PriceTable } from "./ledger.ts"
import { localExampleOf } from "./local.ts"
import { makeSpendCap, reservationLeaseMs } from "./spend-cap.ts"
import {
  type AiProvider,
  type ImageInput,
  isTransient,
  ProviderError,
  type ProviderId,
  type ProviderRequest,
  type StreamEvent,
  type Usage
} from "./provider.ts"

/** Who asks and for what: the ledger's user and feature columns. */
export interface CallContext {
  readonly feature: string
  readonly userId?: string | undefined
  /** The session the call works for: its cost is what the ledger holds for it. */
  readonly sessionId?: string | undefined
}

export interface CallMeta {
  readonly provider: ProviderId
  readonly model: string
  /** True when the answer came from the local, deterministic provider. */
  readonly local: boolean
  readonly usage: Usage
  readonly costMicros: number
  readonly latencyMs: number
}

export interface ObjectRequest<A, I> {
  readonly schema: Schema.Schema<A, I>
  readonly system?: string
  readonly prompt: string
  readonly image?: ImageInput
  readonly maxOutputTokens?: number
  readonly temperature?: number
  /** See `ProviderRequest.thinkingBudget` (0: no hidden thinking before the answer). */
  readonly thinkingBudget?: number
  /** A plausible value for the local provider; otherwise one is generated from the schema. */
  readonly localValue?: () => A
}

export interface TextRequest {
  readonly system?: string
  readonly prompt: string
  readonly maxOutputTokens?: number
  readonly temperature?: number
  /** See `ProviderRequest.thinkingBudget` (0: no hidden thinking before the first delta). */
  readonly thinkingBudget?: number
  readonly localText?: () => string
}

export type TextEvent =
  /** The provider that answers, known before its first delta (it will not change after). */
  | { readonly _tag: "Started"; readonly provider: ProviderId; readonly model: string; readonly local: boolean }
  | { readonly _tag: "Delta"; readonly text: string }
  | ({ readonly _tag: "Completed"; readonly ttftMs: number } & CallMeta)

/** A streamed structured answer: its JSON text as it is written, then the value it decodes to. */
export type ObjectEvent<A> =
  | Extract<TextEvent, { readonly _tag: "Started" | "Delta" }>
  | ({ readonly _tag: "Completed"; readonly value: A; readonly ttftMs: number } & CallMeta)

export interface AiStrategyOptions {
  readonly providers: ReadonlyArray<AiProvider>
  readonly prices: PriceTable
  readonly breaker: BreakerOptions
  /** Per user and UTC day, in micro-units; 0 disables the cap. */
  readonly dailyCapMicros: number
}

export interface AiStrategyShape {
  readonly providers: ReadonlyArray<{ readonly id: ProviderId; readonly model: string; readonly timeoutMs: number }>
  readonly generateObject: <A, I>(
    context: CallContext,
    request: ObjectRequest<A, I>
  ) => Effect.Effect<{ readonly value: A } & CallMeta, AiError>
  readonly streamText: (context: CallContext, request: TextRequest) => Stream.Stream<TextEvent, AiError>
  /**
   * `generateObject` streamed: the JSON text as the provider writes it (a caller may show what it
   * can parse of it early), then the decoded value. The chain falls back only before the first
   * delta, as `streamText`; an answer that does not decode gets one corrective retry, not streamed,
   * from the same provider.
   */
  readonly streamObject: <A, I>(
    context: CallContext,
    request: ObjectRequest<A, I>
  ) => Stream.Stream<ObjectEvent<A>, AiError>
  readonly circuit: (provider: ProviderId) => Effect.Effect<"closed" | "open" | "half-open">
  /**
   * The daily spend cap alone (read, not reserved), for callers that must answer before starting
   * a stream (SSE); with `request`, whether that call would fit under it.
   */
  readonly checkBudget: (context: CallContext, request?: TextRequest) => Effect.Effect<void, AiQuotaExceeded>
}

const addUsage = (a: Usage, b: Usage): Usage => ({
  inputTokens: a.inputTokens + b.inputTokens,
  outputTokens: a.outputTokens + b.outputTokens
})

const NO_USAGE: Usage = { inputTokens: 0, outputTokens: 0 }

/** One attempt's failure, with what the provider billed before it (an invalid answer's tokens are paid for). */
class AttemptFailure extends Data.TaggedError("AttemptFailure")<{
  readonly error: ProviderError | AiInvalidOutput
  readonly usage: Usage
}> {}

/** A provider failed transiently (or was skipped): the chain moves on, carrying every attempt so far. */
class MovedOn extends Data.TaggedError("MovedOn")<{ readonly attempts: ReadonlyArray<AttemptRecord> }> {}

/** The settings a text and a structured request share, each only when given (exactOptionalPropertyTypes). */
const settingsOf = (request: TextRequest | ObjectRequest<unknown, unknown>): Omit<ProviderRequest, "prompt"> => ({
  ...(request.system === undefined ? {} : { system: request.system }),
  ...(request.maxOutputTokens === undefined ? {} : { maxOutputTokens: request.maxOutputTokens }),
  ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
  ...(request.thinkingBudget === undefined ? {} : { thinkingBudget: request.thinkingBudget })
})

/** What a structured request asks of a provider: JSON matching the schema (the local provider answers an example). */
const objectRequestOf = <A, I>(request: ObjectRequest<A, I>): ProviderRequest => ({
  prompt: request.prompt,
  json: {
    name: "answer",
    schema: JSONSchema.make(request.schema),
    example: () => localExampleOf(request.schema, request.prompt, request.localValue)
  },
  ...settingsOf(request),
  ...(request.image === undefined ? {} : { image: request.image })
})

/** An answer's text decoded: the JSON whole, or the one object in a code fence or in prose (see `AnswerJson`). */
const decoderOf = <A, I>(schema: Schema.Schema<A, I>) => Schema.decodeUnknown(answerOf(schema), { errors: "all" })

/** The prompt of the one corrective retry after an answer that did not decode. */
const correctivePrompt = (prompt: string, problems: string) =>
  `${prompt}\n\nYour previous answer was not valid: ${problems.slice(0, 1_000)}\n` +
  "Answer again with only the JSON value that matches the schema."

const outcomeOf = (error: ProviderError): CallOutcome => (error.kind === "timeout" ? "timeout" : "error")

export class AiStrategy extends Context.Tag("AiStrategy")<AiStrategy, AiStrategyShape>() {
  static make(options: AiStrategyOptions) {
    return Effect.gen(function* () {
      const ledger = yield* AiLedger
      const breaker = yield* makeBreaker(options.breaker)
      const providers = options.providers

      const record = (
        context: CallContext,
        provider: AiProvider,
        fields: {
          readonly outcome: CallOutcome
          readonly usage?: Usage
          readonly latencyMs?: number
          readonly ttftMs?: number
          readonly errorKind?: string
        }
      ) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const usage = fields.usage ?? NO_USAGE
          return ledger.record({
            userId: context.userId,
            sessionId: context.sessionId,
            feature: context.feature,
            provider: provider.id,
            model: provider.model,
            inputTokens: usage.inputTokens,
            outputTokens: usage.outputTokens,
            costMicros: costMicros(options.prices, provider.id, usage),
            latencyMs: Math.round(fields.latencyMs ?? 0),
            ttftMs: fields.ttftMs === undefined ? undefined : Math.round(fields.ttftMs),
            outcome: fields.outcome,
            errorKind: fields.errorKind,
            at: new Date(now)
          })
        }).pipe(
          // The ledger must never fail a user's call.
          Effect.catchAllCause((cause) => Effect.logError("AI ledger write failed", cause))
        )

      const cap = makeSpendCap({
        ledger,
        prices: options.prices,
        providers: providers.map((provider) => provider.id),
        dailyCapMicros: options.dailyCapMicros,
        leaseMs: reservationLeaseMs(providers.map((provider) => provider.timeoutMs))
      })

      const timeoutError = (provider: AiProvider) =>
        new ProviderError({
          provider: provider.id,
          kind: "timeout",
          message: `No answer within ${provider.timeoutMs} ms`
        })

      const attemptRecord = (provider: AiProvider, error: ProviderError | AiInvalidOutput): AttemptRecord =>
        error._tag === "AiInvalidOutput"
          ? { provider: provider.id, model: provider.model, outcome: "error", kind: "invalid_output" }
          : {
              provider: provider.id,
              model: provider.model,
              outcome: error.kind === "timeout" ? "timeout" : "error",
              kind: error.kind,
              ...(error.status === undefined ? {} : { status: error.status })
            }

      /**
       * One provider's attempt, as one Effect: skipped while its circuit is open, else `call`d
       * (which carries its own timeout), recorded in the ledger with what it consumed, in its own span.
       * A transient failure becomes `MovedOn` (the chain tries the next); an invalid request or an
       * answer that stayed invalid ends the chain.
       */
      const viaProvider = <A, R>(
        context: CallContext,
        provider: AiProvider,
        call: (provider: AiProvider) => Effect.Effect<A, AttemptFailure, R>
      ): Effect.Effect<A, MovedOn | AiRejected | AiInvalidOutput, R> =>
        Effect.gen(function* () {
          if (!(yield* breaker.allow(provider.id))) {
            yield* Effect.annotateCurrentSpan("ai.outcome", "skipped")
            yield* record(context, provider, { outcome: "skipped", errorKind: "circuit_open" })
            return yield* new MovedOn({
              attempts: [{ provider: provider.id, model: provider.model, outcome: "skipped", kind: "circuit_open" }]
            })
          }
          const started = yield* Clock.currentTimeMillis
          return yield* call(provider).pipe(
            Effect.tap(() =>
              Effect.zipRight(breaker.succeeded(provider.id), Effect.annotateCurrentSpan("ai.outcome", "ok"))
            ),
            Effect.tapError(({ error, usage }) =>
              Effect.gen(function* () {
                const latencyMs = (yield* Clock.currentTimeMillis) - started
                if (error._tag === "ProviderError" && isTransient(error)) yield* breaker.failed(provider.id)
                const kind = error._tag === "ProviderError" ? error.kind : "invalid_output"
                yield* Effect.annotateCurrentSpan("ai.outcome", kind)
                yield* record(context, provider, {
                  outcome: error._tag === "ProviderError" ? outcomeOf(error) : "error",
                  usage,
                  latencyMs,
                  errorKind: kind
                })
              })
            ),
            // A caller that goes away mid-attempt (client disconnect, an outer timeout) is recorded too.
            Effect.onInterrupt(() =>
              Effect.flatMap(Clock.currentTimeMillis, (now) =>
                record(context, provider, { outcome: "cancelled", latencyMs: now - started })
              )
            ),
            Effect.mapError(({ error }) => {
              if (error._tag === "AiInvalidOutput") return error
              if (isTransient(error)) return new MovedOn({ attempts: [attemptRecord(provider, error)] })
              return new AiRejected({
                provider: provider.id,
                message: error.message,
                ...(error.status === undefined ? {} : { status: error.status })
              })
            })
          )
        }).pipe(
          Effect.withSpan("ai.attempt", {
            attributes: { "ai.provider": provider.id, "ai.model": provider.model, "ai.feature": context.feature }
          })
        )

      /**
       * The chain: each provider's attempt `orElse` the next one's, recovering (`catchTag`) only
       * from `MovedOn`, whose attempts travel along; when the last moves on, `AiUnavailable` lists them all.
       */
      const chain = <A, R>(
        context: CallContext,
        call: (provider: AiProvider) => Effect.Effect<A, AttemptFailure, R>
      ): Effect.Effect<A, AiError, R> =>
        providers
          .reduce<Effect.Effect<A, MovedOn | AiRejected | AiInvalidOutput, R>>(
            (earlier, provider) =>
              Effect.catchTag(earlier, "MovedOn", (before) =>
                viaProvider(context, provider, call).pipe(
                  Effect.catchTag("MovedOn", (after) =>
                    Effect.fail(new MovedOn({ attempts: [...before.attempts, ...after.attempts] }))
                  )
                )
              ),
            Effect.fail(new MovedOn({ attempts: [] }))
          )
          .pipe(Effect.catchTag("MovedOn", ({ attempts }) => Effect.fail(new AiUnavailable({ attempts }))))

      const generateObject = <A, I>(context: CallContext, request: ObjectRequest<A, I>) =>
        Effect.gen(function* () {
          const image = request.image !== undefined
          yield* cap.admit(context.userId, cap.estimate(request, image))
          const decode = decoderOf(request.schema)
          const base = objectRequestOf(request)
          return yield* chain(context, (provider) =>
            Effect.gen(function* () {
              const started = yield* Clock.currentTimeMillis
              /** One call within the provider's timeout; a failure bills what earlier calls of this attempt consumed. */
              const ask = (req: ProviderRequest, paid: Usage) =>
                provider.generate(req).pipe(
                  Effect.timeoutFail({
                    duration: Duration.millis(provider.timeoutMs),
                    onTimeout: () => timeoutError(provider)
                  }),
                  Effect.mapError((error) => new AttemptFailure({ error, usage: paid }))
                )
              const invalid = (issues: string, usage: Usage) =>
                new AttemptFailure({
                  error: new AiInvalidOutput({ provider: provider.id, issues: issues.slice(0, 2_000) }),
                  usage
                })
              /**
               * One corrective retry on the same provider, with the problems spelled out. It bills
               * too: its own reservation, and no retry when the cap cannot take it.
               */
              const corrected = (problems: string, paid: Usage) =>
                Effect.gen(function* () {
                  const prompt = correctivePrompt(base.prompt, problems)
                  yield* cap
                    .admit(context.userId, cap.estimate({ ...request, prompt }, image))
                    .pipe(Effect.catchTag("AiQuotaExceeded", () => Effect.fail(invalid(problems, paid))))
                  const retry = yield* ask({ ...base, prompt }, paid)
                  const usage = addUsage(paid, retry.usage)
                  const value = yield* decode(retry.text).pipe(
                    Effect.mapError((error) => invalid(error.message, usage))
                  )
                  return { value, usage }
                })
              const first = yield* ask(base, NO_USAGE)
              const { value, usage } = yield* decode(first.text).pipe(
                Effect.map((value) => ({ value, usage: first.usage })),
                Effect.catchAll((error) => corrected(error.message, first.usage))
              )
              const latencyMs = (yield* Clock.currentTimeMillis) - started
              yield* record(context, provider, { outcome: "ok", usage, latencyMs })
              return {
                value,
                provider: provider.id,
                model: provider.model,
                local: provider.id === "local",
                usage,
                costMicros: costMicros(options.prices, provider.id, usage),
                latencyMs
              }
            })
          )
        }).pipe(Effect.scoped)

      /**
       * Opens the provider's stream in a scope of its own and pulls until the first delta
       * (within the provider's timeout). On a transient failure the scope is closed (the
       * request aborted) and the next provider is tried; after the first delta, the stream is
       * committed to this provider.
       */
      const streamVia = (
        context: CallContext,
        providerRequest: ProviderRequest,
        estimateMicros: number
      ): Stream.Stream<TextEvent, AiError> =>
        Stream.unwrapScoped(
          Effect.gen(function* () {
            // Held until the stream ends: its scope closes after the attempt's entry is recorded.
            yield* cap.admit(context.userId, estimateMicros)
            const outer = yield* Effect.scope
            return yield* chain(context, (provider) =>
              Effect.gen(function* () {
                const started = yield* Clock.currentTimeMillis
                const scope = yield* Scope.fork(outer, { _tag: "Sequential" })
                const timeout = <X>(effect: Effect.Effect<X, Option.Option<ProviderError>>) =>
                  effect.pipe(
                    Effect.timeoutFail({
                      duration: Duration.millis(provider.timeoutMs),
                      onTimeout: () => Option.some(timeoutError(provider))
                    })
                  )
                const pull = yield* Scope.extend(Stream.toPull(provider.stream(providerRequest)), scope)
                /** Events up to and including the first delta; `ended` when the stream finished first. */
                const untilFirstDelta = (
                  head: ReadonlyArray<StreamEvent>
                ): Effect.Effect<
                  { readonly head: ReadonlyArray<StreamEvent>; readonly ended: boolean },
                  ProviderError
                > =>
                  timeout(pull).pipe(
                    Effect.map(Option.some),
                    Effect.catchAll(
                      Option.match({
                        onNone: () => Effect.succeed(Option.none<Chunk.Chunk<StreamEvent>>()),
                        onSome: Effect.fail
                      })
                    ),
                    Effect.flatMap(
                      Option.match({
                        onNone: () => Effect.succeed({ head, ended: true }),
                        onSome: (chunk) => {
                          const events = [...head, ...Chunk.toReadonlyArray(chunk)]
                          return events.some((event) => event._tag === "Delta")
                            ? Effect.succeed({ head: events, ended: false })
                            : untilFirstDelta(events)
                        }
                      })
                    )
                  )
                // A failure before any text closes this provider's request; the chain tries the next.
                const { head, ended } = yield* untilFirstDelta([]).pipe(
                  Effect.tapError(() => Scope.close(scope, Exit.void)),
                  Effect.mapError((error) => new AttemptFailure({ error, usage: NO_USAGE }))
                )
                const ttftMs = (yield* Clock.currentTimeMillis) - started
                // Plain state, read and written by this attempt's stream only (its stages run one after
                // another): a Ref and an effect per delta cost more than the delta's own parsing.
                const state = { usage: NO_USAGE, deltas: 0, settled: false }
                /** The deltas of a chunk, with the usage and the count taken on the way: one pass per chunk. */
                const observe = (chunk: Chunk.Chunk<StreamEvent>): Chunk.Chunk<TextEvent> => {
                  const deltas: Array<TextEvent> = []
                  for (const event of chunk) {
                    if (event._tag === "Usage") state.usage = event.usage
                    else {
                      state.deltas++
                      deltas.push(event)
                    }
                  }
                  return Chunk.unsafeFromArray(deltas)
                }
                // No timeout around each pull after the first delta (one cost ~0.1 ms of CPU, and a
                // model writing a token per delta sends ~150 for one screenshot): a provider's stream
                // fails by itself once quiet for its `timeoutMs` (see `AiProvider.stream`).
                const rest: Stream.Stream<StreamEvent, ProviderError> = ended
                  ? Stream.empty
                  : Stream.repeatEffectChunkOption(pull)
                const completed = Effect.gen(function* () {
                  const { usage } = state
                  const latencyMs = (yield* Clock.currentTimeMillis) - started
                  state.settled = true
                  yield* record(context, provider, { outcome: "ok", usage, latencyMs, ttftMs })
                  return {
                    _tag: "Completed" as const,
                    provider: provider.id,
                    model: provider.model,
                    local: provider.id === "local",
                    usage,
                    costMicros: costMicros(options.prices, provider.id, usage),
                    latencyMs,
                    ttftMs
                  }
                })
                const failedAfterText = (error: ProviderError) =>
                  Effect.gen(function* () {
                    const s = { ...state }
                    state.settled = true
                    yield* breaker.failed(provider.id)
                    yield* record(context, provider, {
                      outcome: outcomeOf(error),
                      usage: s.usage,
                      latencyMs: (yield* Clock.currentTimeMillis) - started,
                      ttftMs,
                      errorKind: error.kind
                    })
                    return yield* new AiStreamFailed({ provider: provider.id, kind: error.kind, deltas: s.deltas })
                  })
                const cancelled = Effect.gen(function* () {
                  const s = { ...state }
                  if (s.settled) return
                  yield* record(context, provider, {
                    outcome: "cancelled",
                    usage: s.usage,
                    latencyMs: (yield* Clock.currentTimeMillis) - started,
                    ttftMs
                  })
                })
                const startedEvent: TextEvent = {
                  _tag: "Started",
                  provider: provider.id,
                  model: provider.model,
                  local: provider.id === "local"
                }
                const events: Stream.Stream<TextEvent, AiError> = Stream.fromIterable(head).pipe(
                  Stream.concat(rest),
                  Stream.mapChunks(observe),
                  Stream.catchAll((error) => Stream.fromEffect(failedAfterText(error))),
                  (stream) => Stream.concat(Stream.make(startedEvent), stream),
                  Stream.concat(Stream.fromEffect(completed)),
                  Stream.ensuring(Effect.zipRight(cancelled, Scope.close(scope, Exit.void)))
                )
                return events
              })
            )
          })
        ).pipe(Stream.withSpan("ai.stream", { attributes: { "ai.feature": context.feature } }))

      const streamText = (context: CallContext, request: TextRequest): Stream.Stream<TextEvent, AiError> =>
        streamVia(
          context,
          {
            prompt: request.prompt,
            ...settingsOf(request),
            ...(request.localText === undefined ? {} : { localText: request.localText })
          },
          cap.estimate(request, false)
        )

      /**
       * The one corrective retry of a streamed answer that did not decode, on the provider that
       * wrote it (the stream is committed to it): not streamed, its own reservation and ledger
       * entry. Any failure of it leaves the answer invalid.
       */
      const correctStreamed = <A, I>(
        context: CallContext,
        request: ObjectRequest<A, I>,
        base: ProviderRequest,
        answered: { readonly provider: ProviderId; readonly issues: string }
      ): Effect.Effect<{ readonly value: A; readonly usage: Usage }, AiInvalidOutput> =>
        Effect.gen(function* () {
          const invalid = new AiInvalidOutput({ provider: answered.provider, issues: answered.issues.slice(0, 2_000) })
          const provider = providers.find((candidate) => candidate.id === answered.provider)
          if (provider === undefined) return yield* invalid
          const prompt = correctivePrompt(base.prompt, answered.issues)
          yield* cap
            .admit(context.userId, cap.estimate({ ...request, prompt }, request.image !== undefined))
            .pipe(Effect.catchTag("AiQuotaExceeded", () => Effect.fail(invalid)))
          const started = yield* Clock.currentTimeMillis
          const retry = yield* provider.generate({ ...base, prompt }).pipe(
            Effect.timeoutFail({
              duration: Duration.millis(provider.timeoutMs),
              onTimeout: () => timeoutError(provider)
            }),
            Effect.tapError((error) =>
              Effect.flatMap(Clock.currentTimeMillis, (now) =>
                record(context, provider, {
                  outcome: outcomeOf(error),
                  latencyMs: now - started,
                  errorKind: error.kind
                })
              )
            ),
            Effect.mapError(() => invalid)
          )
          const latencyMs = (yield* Clock.currentTimeMillis) - started
          const value = yield* decoderOf(request.schema)(retry.text).pipe(
            Effect.tapError(() =>
              record(context, provider, {
                outcome: "error",
                usage: retry.usage,
                latencyMs,
                errorKind: "invalid_output"
              })
            ),
            Effect.mapError(
              (error) => new AiInvalidOutput({ provider: provider.id, issues: error.message.slice(0, 2_000) })
            )
          )
          yield* record(context, provider, { outcome: "ok", usage: retry.usage, latencyMs })
          return { value, usage: retry.usage }
        }).pipe(Effect.scoped)

      const streamObject = <A, I>(
        context: CallContext,
        request: ObjectRequest<A, I>
      ): Stream.Stream<ObjectEvent<A>, AiError> => {
        const base = objectRequestOf(request)
        const decode = decoderOf(request.schema)
        return Stream.suspend(() => {
          // The answer's text so far; only `Completed` needs it whole. Chunk by chunk, with no effect
          // per delta (one costs more than the delta's own parsing).
          let text = ""
          const complete = (event: Extract<TextEvent, { _tag: "Completed" }>) =>
            decode(text).pipe(
              Effect.map((value): ObjectEvent<A> => ({ ...event, value })),
              Effect.catchTag("ParseError", (error) =>
                Effect.map(
                  correctStreamed(context, request, base, { provider: event.provider, issues: error.message }),
                  ({ value, usage }): ObjectEvent<A> => {
                    const total = addUsage(event.usage, usage)
                    return {
                      ...event,
                      value,
                      usage: total,
                      costMicros: costMicros(options.prices, event.provider, total)
                    }
                  }
                )
              )
            )
          return streamVia(context, base, cap.estimate(request, request.image !== undefined)).pipe(
            Stream.mapChunksEffect((chunk): Effect.Effect<Chunk.Chunk<ObjectEvent<A>>, AiError> => {
              const events: Array<ObjectEvent<A>> = []
              let last: Extract<TextEvent, { _tag: "Completed" }> | undefined
              for (const event of chunk) {
                if (event._tag === "Completed") last = event
                else {
                  if (event._tag === "Delta") text += event.text
                  events.push(event)
                }
              }
              return last === undefined
                ? Effect.succeed(Chunk.unsafeFromArray(events))
                : Effect.map(complete(last), (completed) => Chunk.unsafeFromArray([...events, completed]))
            })
          )
        })
      }

      return AiStrategy.of({
        providers: providers.map(({ id, model, timeoutMs }) => ({ id, model, timeoutMs })),
        generateObject,
        streamText,
        streamObject,
        circuit: (provider) => breaker.view(provider),
        checkBudget: (context, request) =>
          cap.check(context.userId, request === undefined ? 0 : cap.estimate(request, false))
      })
    })
  }
}
