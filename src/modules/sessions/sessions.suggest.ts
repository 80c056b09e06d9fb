/**
 * Writing one batch of suggestions for a session, shared by the pipeline (batch 0, in the
 * worker) and regeneration (later batches, in the api): the prompt with its context, the
 * provider's stream split into lines, each line cleaned and checked like an opener, exact
 * repeats of the session's earlier suggestions dropped, each kept line saved at
 * (batch, position) — idempotent, so a retried attempt replaces what it wrote (a pipeline attempt
 * writes only while it owns the session's job: superseded, it stops with `AttemptStopped`). A batch in which
 * no line was kept (the model wrote none, or every one was dropped) is asked for once more, then
 * fails with `AiEmptyResult`: an empty batch is never a success.
 */
import { Effect, Exit, Option, Queue, Schema, Stream, Take } from "effect"
import type { AiError } from "../../core/ai/errors.ts"
import { AiStrategy } from "../../core/ai/strategy.ts"
import { type AiWireError, aiErrorToWire } from "../../core/ai/wire.ts"
import { AppConfig } from "../../core/config.ts"
import type { DbError } from "../../core/db/db.ts"
import { AiEmptyResult, type NotFound, SafetyBlocked, type Unauthorized } from "../../domain/errors.ts"
import type { BlockedReason } from "../../domain/openers.ts"
import type { SessionMessage, SessionSuggestion } from "../../domain/sessions.ts"
import { Tone } from "../../domain/tones.ts"
import { MatchesService, matchTexts } from "../matches/matches.service.ts"
import { cleanLine, impliesMinor, lineBlockedReason, normalizeOpener } from "../openers/safety.ts"
import {
  declined,
  localSuggestions,
  SUGGESTIONS_PROMPT_VERSION,
  type SuggestionsPromptInput,
  suggestionsPrompt,
  suggestionsSystem
} from "./prompts/suggestions-v1.ts"
import { type AttemptStopped, SessionsRepo } from "./sessions.repo.ts"
import { toSuggestion } from "./sessions.views.ts"

export const SUGGESTION_COUNT = 3
const MAX_SUGGESTION_CHARS = 300
/** Context bounds: the earlier sessions with the match, and the last messages of each. */
const EARLIER_SESSIONS = 3
const EARLIER_MESSAGES = 8

export interface BatchRequest {
  readonly sessionId: string
  readonly userId: string
  readonly matchId: string | null
  readonly batch: number
  readonly tone: string
  readonly language: string
  readonly context: string | null
  readonly instruction: string | null
  readonly transcript: ReadonlyArray<SessionMessage>
  /** Earlier suggestions of the session (other batches): in the never-repeat section, exact repeats dropped. */
  readonly avoid: ReadonlyArray<string>
  /**
   * An earlier attempt may have written this batch: the lines it wrote past this attempt's are
   * deleted at the end. False for a batch no one wrote yet (no statement spent on it).
   */
  readonly rewrite: boolean
  /**
   * The pipeline attempt writing batch 0 (its token on the session): every row is written only
   * while it owns the session. Null for a regeneration (the api, a new batch of a completed session).
   */
  readonly attempt: string | null
}

export type BatchEvent =
  | { readonly _tag: "Delta"; readonly index: number; readonly text: string }
  | { readonly _tag: "Suggestion"; readonly index: number; readonly suggestion: SessionSuggestion }
  /** Text already streamed as deltas of `index` was dropped: the next line streams under the same index. */
  | { readonly _tag: "Blocked"; readonly index: number; readonly reason: BlockedReason }

export type BatchError = AiError | DbError | SafetyBlocked | AiEmptyResult | AttemptStopped

/**
 * Why a regeneration's stream fails: the batch's failures, with its session gone meanwhile
 * (`AttemptStopped`) told as `NotFound`, or as `Unauthorized` (`account-erased`) when it went
 * with its account.
 */
export type RegenerationFailure = Exclude<BatchError, AttemptStopped> | NotFound | Unauthorized

/**
 * A failure of the batch as the API names it (SafetyBlocked, AiEmptyResult, NotFound and
 * Unauthorized are already wire errors; a database failure is a defect, and so is an attempt
 * stopped that no one told apart).
 */
export const batchErrorToWire = (
  error: BatchError | RegenerationFailure
): Effect.Effect<never, SafetyBlocked | AiEmptyResult | NotFound | Unauthorized | AiWireError> =>
  error._tag === "SafetyBlocked" ||
  error._tag === "AiEmptyResult" ||
  error._tag === "NotFound" ||
  error._tag === "Unauthorized"
    ? Effect.fail(error)
    : error._tag === "DbError" || error._tag === "AttemptStopped"
      ? Effect.die(error)
      : aiErrorToWire(error)

export interface BatchResult {
  readonly count: number
  readonly costMicros: number
}

export class SessionSuggester extends Effect.Service<SessionSuggester>()("SessionSuggester", {
  effect: Effect.gen(function* () {
    const repo = yield* SessionsRepo
    const matches = yield* MatchesService
    const ai = yield* AiStrategy
    const config = yield* AppConfig

    /**
     * Writes the batch, calling `emit` for each delta and each saved suggestion. Nothing is saved or
     * emitted before `ready` succeeds (the pipeline asks for the suggestions while the transcript
     * is still being saved and published); the provider is asked at once.
     */
    const write = <R>(
      request: BatchRequest,
      emitNow: (event: BatchEvent) => Effect.Effect<void, never, R>,
      ready: Effect.Effect<void> = Effect.void
    ) =>
      Effect.gen(function* () {
        const emit = (event: BatchEvent) => Effect.zipRight(ready, emitNow(event))
        const { sessionId, userId, batch, transcript } = request
        const match =
          request.matchId === null ? null : Option.getOrNull(yield* Effect.option(matches.get(userId, request.matchId)))
        if (impliesMinor([...(match === null ? [] : matchTexts(match)), ...transcript.map((m) => m.text)])) {
          return yield* new SafetyBlocked({ message: "minor" })
        }
        const feedback = yield* repo.feedbackOf(userId)
        const earlier =
          match === null
            ? []
            : yield* repo.earlierWithMatch(userId, match.id, sessionId, {
                sessions: EARLIER_SESSIONS,
                messages: EARLIER_MESSAGES
              })
        const tone: Tone = Schema.is(Tone)(request.tone) ? request.tone : "playful"
        const input: SuggestionsPromptInput = {
          transcript,
          tone,
          language: request.language,
          count: SUGGESTION_COUNT,
          matchName: match?.name ?? null,
          matchNotes: match?.notes ?? null,
          matchBio: match?.bio ?? null,
          matchInterests: match?.interests ?? [],
          earlier: earlier.map((session) => session.messages),
          context: request.context,
          liked: feedback.liked.map((s) => s.text),
          disliked: feedback.disliked.map((s) => ({ text: s.text, reason: s.dislikeReason })),
          declined: declined(transcript),
          instruction: request.instruction,
          avoid: request.avoid
        }
        const meta = { provider: "unknown", model: "unknown", costMicros: 0 }
        let buffer = ""
        let index = 0
        // Deltas of the line being written went out: dropping it must retract them.
        let streamed = false
        const seen = new Set<string>(request.avoid.map(normalizeOpener))

        const finishLine = (raw: string) =>
          Effect.gen(function* () {
            const sent = streamed
            streamed = false
            const text = cleanLine(raw)
            if (text === "" || index >= SUGGESTION_COUNT) return
            const reason = lineBlockedReason(text, {
              maxChars: MAX_SUGGESTION_CHARS,
              policy: config.openers.safetyPolicy,
              seen
            })
            if (reason !== undefined) {
              if (sent) yield* emit({ _tag: "Blocked", index, reason })
              return
            }
            seen.add(normalizeOpener(text))
            const position = index++
            yield* ready
            const saved = yield* repo.saveSuggestion(
              {
                sessionId,
                batch,
                position,
                text,
                tone,
                promptVersion: SUGGESTIONS_PROMPT_VERSION,
                provider: meta.provider,
                model: meta.model
              },
              request.attempt
            )
            yield* emit({ _tag: "Suggestion", index: position, suggestion: toSuggestion(saved) })
          })

        const attempt = ai
          .streamText(
            { feature: "sessions.suggestions", userId, sessionId },
            {
              system: suggestionsSystem(input),
              prompt: suggestionsPrompt(input),
              maxOutputTokens: 120 * SUGGESTION_COUNT + 60,
              temperature: 0.8,
              // Thinking tokens would come before the first delta and count against the cap above.
              thinkingBudget: 0,
              localText: () => localSuggestions(input)
            }
          )
          .pipe(
            Stream.runForEach((event) => {
              if (event._tag === "Started") {
                meta.provider = event.provider
                meta.model = event.model
                return Effect.void
              }
              if (event._tag === "Completed") {
                meta.costMicros += event.costMicros
                const last = buffer
                buffer = ""
                return finishLine(last)
              }
              return Effect.gen(function* () {
                const parts = event.text.split("\n")
                for (let i = 0; i < parts.length; i++) {
                  const part = parts[i] ?? ""
                  buffer += part
                  if (part !== "" && index < SUGGESTION_COUNT && buffer.trim() !== "") {
                    streamed = true
                    yield* emit({ _tag: "Delta", index, text: part })
                  }
                  if (i < parts.length - 1) {
                    const line = buffer
                    buffer = ""
                    yield* finishLine(line)
                  }
                }
              })
            })
          )
        yield* attempt
        if (index === 0) {
          yield* Effect.logWarning("Suggestions: no line kept, asking once more").pipe(
            Effect.annotateLogs({ sessionId, batch })
          )
          buffer = ""
          yield* attempt
        }
        yield* ready
        if (request.rewrite) yield* repo.trimSuggestions(sessionId, request.attempt, batch, index)
        if (index === 0) {
          return yield* new AiEmptyResult({
            message: "The AI wrote no suggestion that could be kept, twice; nothing was saved or counted",
            details: { attempts: 2 }
          })
        }
        const result: BatchResult = { count: index, costMicros: meta.costMicros }
        return result
      })

    /** The same as a stream of events ending with the result; interrupting it stops the provider. */
    const stream = (request: BatchRequest) =>
      Stream.unwrapScoped(
        Effect.gen(function* () {
          const queue = yield* Queue.unbounded<Take.Take<BatchEvent | BatchResult, BatchError>>()
          yield* write(request, (event) => Queue.offer(queue, Take.of(event))).pipe(
            Effect.exit,
            Effect.flatMap((exit) =>
              Exit.isSuccess(exit)
                ? Queue.offerAll(queue, [Take.of(exit.value), Take.end])
                : Queue.offer(queue, Take.failCause(exit.cause))
            ),
            Effect.forkScoped
          )
          return Stream.flattenTake(Stream.fromQueue(queue))
        })
      )

    return { write, stream } as const
  }),
  dependencies: [SessionsRepo.Default]
}) {}
