/**
 * The AI strategy: the providers in order (primary, then fallbacks), each attempt with its own
 * timeout, built as a chain of `orElse`-style recoveries. Transient failures move on; a request
 * a provider calls invalid stops the chain; a stream falls back only before its first delta; a
 * provider that keeps failing is skipped while its circuit is open. Every attempt is a span and
 * a ledger entry; each call's estimated cost is reserved against the daily spend cap before any
 * provider is called.
 */
import {
  Arbitrary,
  Chunk,
  Clock,
  Context,
  Duration,
  Effect,
  Either,
  Exit,
  FastCheck,
  JSONSchema,
  Option,
  Ref,
  Schema,
  Scope,
  Stream
} from "effect"
import { createHash } from "node:crypto"
import { makeBreaker, type BreakerOptions } from "./breaker.ts"
import {
  AiInvalidOutput,
  AiQuotaExceeded,
  AiRejected,
  AiStreamFailed,
  AiUnavailable,
  type AiError,
  type AttemptRecord
} from "./errors.ts"
import { secondsToNextUtcDay, startOfUtcDay } from "../quota/quotas.ts"
import { AiLedger, costMicros, type CallOutcome, type PriceTable } from "./ledger.ts"
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
  /** A plausible value for the local provider; otherwise one is generated from the schema. */
  readonly localValue?: () => A
}

export interface TextRequest {
  readonly system?: string
  readonly prompt: string
  readonly maxOutputTokens?: number
  readonly temperature?: number
  readonly localText?: () => string
}

export type TextEvent =
  /** The provider that answers, known before its first delta (it will not change after). */
  | { readonly _tag: "Started"; readonly provider: ProviderId; readonly model: string; readonly local: boolean }
  | { readonly _tag: "Delta"; readonly text: string }
  | ({ readonly _tag: "Completed"; readonly ttftMs: number } & CallMeta)

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

/** Output tokens assumed for a request that sets no maximum (the providers' own defaults are at most this). */
const DEFAULT_OUTPUT_BOUND = 4_096
/** Input tokens assumed for one image: above what each provider counts for an image of IMAGE_MAX_EDGE. */
const IMAGE_TOKEN_BOUND = 3_000

/**
 * Tokens of a text, bounded above: no tokenizer makes more tokens than the text has UTF-8 bytes,
 * plus a little for the request's framing.
 */
const tokenBound = (...texts: ReadonlyArray<string | undefined>) =>
  texts.reduce((sum, text) => sum + (text === undefined ? 0 : Buffer.byteLength(text, "utf8")), 64)

/** A valid value of `schema`, the same for the same prompt: what the local provider answers. */
const exampleOf = <A, I>(schema: Schema.Schema<A, I>, prompt: string, localValue?: () => A): unknown => {
  const value =
    localValue?.() ??
    FastCheck.sample(Arbitrary.make(schema), {
      numRuns: 1,
      seed: createHash("sha256").update(prompt).digest().readInt32BE(0)
    })[0]
  return Schema.encodeSync(schema)(value as A)
}

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

      const capApplies = (context: CallContext): context is CallContext & { readonly userId: string } =>
        options.dailyCapMicros > 0 && context.userId !== undefined

      const overCap = (spentMicros: number, now: number) =>
        new AiQuotaExceeded({
          retryAfterSeconds: secondsToNextUtcDay(now),
          spentMicros,
          capMicros: options.dailyCapMicros
        })

      /**
       * The most one try can cost: its input and maximum output priced at the dearest provider of
       * the chain (only one attempt bills: failed ones record no usage).
       */
      const estimateMicros = (
        request: { readonly system?: string; readonly prompt: string; readonly maxOutputTokens?: number },
        image: boolean
      ) => {
        const usage: Usage = {
          inputTokens: tokenBound(request.system, request.prompt) + (image ? IMAGE_TOKEN_BOUND : 0),
          outputTokens: request.maxOutputTokens ?? DEFAULT_OUTPUT_BOUND
        }
        return Math.max(0, ...providers.map((provider) => costMicros(options.prices, provider.id, usage)))
      }

      /** A read-only look at the cap for a call of `estimate`: what callers use to answer before starting a stream. */
      const checkCap = (context: CallContext, estimate = 0) =>
        Effect.gen(function* () {
          if (!capApplies(context)) return
          const now = yield* Clock.currentTimeMillis
          const spent = yield* ledger.spentSince(context.userId, startOfUtcDay(now))
          if (spent >= options.dailyCapMicros || spent + estimate > options.dailyCapMicros)
            return yield* overCap(spent, now)
        })

      /**
       * Admission before cost: the call's estimated cost is reserved against the cap atomically
       * (spent + reserved + estimate ≤ cap), held until the call's entries are recorded, then released.
       */
      const admit = (context: CallContext, estimate: number) =>
        Effect.acquireRelease(
          Effect.gen(function* () {
            if (!capApplies(context)) return Effect.void
            const now = yield* Clock.currentTimeMillis
            const admission = yield* ledger.reserve({
              userId: context.userId,
              since: startOfUtcDay(now),
              estimateMicros: estimate,
              capMicros: options.dailyCapMicros
            })
            if (admission._tag === "Refused") return yield* overCap(admission.spentMicros, now)
            return admission.release
          }),
          (release) => release
        )

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
       * The chain: `attempt(provider)` for each provider in order, each recovery (`catchIf`)
       * moving on only for transient failures. `attempt` must record its own successes.
       */
      const chain = <A, R>(
        context: CallContext,
        attempt: (provider: AiProvider) => Effect.Effect<A, ProviderError | AiInvalidOutput, R>
      ): Effect.Effect<A, AiError, R> => {
        const attempts: Array<AttemptRecord> = []
        const from = (index: number): Effect.Effect<A, AiError, R> => {
          const provider = providers[index]
          if (provider === undefined)
            return Effect.suspend(() => Effect.fail(new AiUnavailable({ attempts: [...attempts] })))
          const next = from(index + 1)
          const span = Effect.withSpan("ai.attempt", {
            attributes: { "ai.provider": provider.id, "ai.model": provider.model, "ai.feature": context.feature }
          })
          return Effect.gen(function* () {
            if (!(yield* breaker.allow(provider.id))) {
              attempts.push({ provider: provider.id, model: provider.model, outcome: "skipped", kind: "circuit_open" })
              // A skipped provider has its (empty) attempt span too, so a trace shows the whole chain.
              yield* record(context, provider, { outcome: "skipped", errorKind: "circuit_open" }).pipe(
                Effect.zipRight(Effect.annotateCurrentSpan("ai.outcome", "skipped")),
                span
              )
              return yield* next
            }
            const started = yield* Clock.currentTimeMillis
            return yield* attempt(provider).pipe(
              Effect.tap(() =>
                Effect.zipRight(breaker.succeeded(provider.id), Effect.annotateCurrentSpan("ai.outcome", "ok"))
              ),
              Effect.tapError((error) =>
                Effect.gen(function* () {
                  const latencyMs = (yield* Clock.currentTimeMillis) - started
                  const transient = error._tag === "ProviderError" && isTransient(error)
                  if (transient) yield* breaker.failed(provider.id)
                  attempts.push(attemptRecord(provider, error))
                  yield* Effect.annotateCurrentSpan(
                    "ai.outcome",
                    error._tag === "ProviderError" ? error.kind : "invalid_output"
                  )
                  yield* record(context, provider, {
                    outcome: error._tag === "ProviderError" ? outcomeOf(error) : "error",
                    latencyMs,
                    errorKind: error._tag === "ProviderError" ? error.kind : "invalid_output"
                  })
                })
              ),
              // A caller that goes away mid-attempt (client disconnect, an outer timeout) is recorded too.
              Effect.onInterrupt(() =>
                Effect.flatMap(Clock.currentTimeMillis, (now) =>
                  record(context, provider, { outcome: "cancelled", latencyMs: now - started })
                )
              ),
              span,
              Effect.catchAll((error): Effect.Effect<A, AiError, R> => {
                if (error._tag === "AiInvalidOutput") return Effect.fail(error)
                if (isTransient(error)) return next
                return Effect.fail(
                  new AiRejected({
                    provider: provider.id,
                    message: error.message,
                    ...(error.status === undefined ? {} : { status: error.status })
                  })
                )
              })
            )
          })
        }
        return from(0)
      }

      const generateObject = <A, I>(context: CallContext, request: ObjectRequest<A, I>) =>
        Effect.gen(function* () {
          const image = request.image !== undefined
          yield* admit(context, estimateMicros(request, image))
          const decode = Schema.decodeUnknown(Schema.parseJson(request.schema), { errors: "all" })
          const base: ProviderRequest = {
            prompt: request.prompt,
            json: {
              name: "answer",
              schema: JSONSchema.make(request.schema),
              example: () => exampleOf(request.schema, request.prompt, request.localValue)
            },
            ...(request.system === undefined ? {} : { system: request.system }),
            ...(request.image === undefined ? {} : { image: request.image }),
            ...(request.maxOutputTokens === undefined ? {} : { maxOutputTokens: request.maxOutputTokens }),
            ...(request.temperature === undefined ? {} : { temperature: request.temperature })
          }
          return yield* chain(context, (provider) =>
            Effect.gen(function* () {
              const started = yield* Clock.currentTimeMillis
              const ask = (req: ProviderRequest) =>
                provider.generate(req).pipe(
                  Effect.timeoutFail({
                    duration: Duration.millis(provider.timeoutMs),
                    onTimeout: () => timeoutError(provider)
                  })
                )
              const first = yield* ask(base)
              let usage = first.usage
              let decoded = yield* Effect.either(decode(first.text))
              if (Either.isLeft(decoded)) {
                // One corrective retry on the same provider, with the problems spelled out. It bills
                // too: its own reservation, and no retry when the cap cannot take it.
                const problems = decoded.left.message
                const prompt =
                  `${base.prompt}\n\nYour previous answer was not valid: ${problems.slice(0, 1_000)}\n` +
                  "Answer again with only the JSON value that matches the schema."
                yield* admit(context, estimateMicros({ ...request, prompt }, image)).pipe(
                  Effect.catchTag("AiQuotaExceeded", () =>
                    Effect.fail(new AiInvalidOutput({ provider: provider.id, issues: problems.slice(0, 2_000) }))
                  )
                )
                const retry = yield* ask({ ...base, prompt })
                usage = addUsage(usage, retry.usage)
                decoded = yield* Effect.either(decode(retry.text))
              }
              const latencyMs = (yield* Clock.currentTimeMillis) - started
              if (Either.isLeft(decoded)) {
                return yield* new AiInvalidOutput({
                  provider: provider.id,
                  issues: decoded.left.message.slice(0, 2_000)
                })
              }
              yield* record(context, provider, { outcome: "ok", usage, latencyMs })
              return {
                value: decoded.right,
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
      const streamText = (context: CallContext, request: TextRequest): Stream.Stream<TextEvent, AiError> =>
        Stream.unwrapScoped(
          Effect.gen(function* () {
            // Held until the stream ends: its scope closes after the attempt's entry is recorded.
            yield* admit(context, estimateMicros(request, false))
            const outer = yield* Effect.scope
            const providerRequest: ProviderRequest = {
              prompt: request.prompt,
              ...(request.system === undefined ? {} : { system: request.system }),
              ...(request.maxOutputTokens === undefined ? {} : { maxOutputTokens: request.maxOutputTokens }),
              ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
              ...(request.localText === undefined ? {} : { localText: request.localText })
            }
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
                // Events up to and including the first delta; `ended` when the stream finished first.
                const head: Array<StreamEvent> = []
                let ended = false
                const opened = yield* Effect.either(
                  Effect.gen(function* () {
                    while (!head.some((event) => event._tag === "Delta")) {
                      const chunk = yield* timeout(pull).pipe(
                        Effect.catchAll(Option.match({ onNone: () => Effect.succeed(undefined), onSome: Effect.fail }))
                      )
                      if (chunk === undefined) {
                        ended = true
                        return
                      }
                      head.push(...Chunk.toReadonlyArray(chunk))
                    }
                  })
                )
                if (Either.isLeft(opened)) {
                  yield* Scope.close(scope, Exit.void)
                  return yield* Effect.fail(opened.left)
                }
                const ttftMs = (yield* Clock.currentTimeMillis) - started
                const state = yield* Ref.make({ usage: NO_USAGE, deltas: 0, settled: false })
                const observe = (event: StreamEvent) =>
                  Ref.update(state, (s) =>
                    event._tag === "Usage" ? { ...s, usage: event.usage } : { ...s, deltas: s.deltas + 1 }
                  )
                const rest: Stream.Stream<StreamEvent, ProviderError> = ended
                  ? Stream.empty
                  : Stream.repeatEffectChunkOption(timeout(pull))
                const completed = Effect.gen(function* () {
                  const { usage } = yield* Ref.get(state)
                  const latencyMs = (yield* Clock.currentTimeMillis) - started
                  yield* Ref.update(state, (s) => ({ ...s, settled: true }))
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
                    const s = yield* Ref.get(state)
                    yield* Ref.update(state, (current) => ({ ...current, settled: true }))
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
                  const s = yield* Ref.get(state)
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
                  Stream.tap(observe),
                  Stream.filterMap((event) => (event._tag === "Delta" ? Option.some<TextEvent>(event) : Option.none())),
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

      return AiStrategy.of({
        providers: providers.map(({ id, model, timeoutMs }) => ({ id, model, timeoutMs })),
        generateObject,
        streamText,
        circuit: (provider) => breaker.view(provider),
        checkBudget: (context, request) => checkCap(context, request === undefined ? 0 : estimateMicros(request, false))
      })
    })
  }
}
