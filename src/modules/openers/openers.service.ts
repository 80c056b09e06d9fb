/**
 * Magic Openers: resolve the profile (a match, its screenshot read once by the vision model, or an
 * inline profile), refuse minors, take today's generation from the daily quota, build the prompt from the user's feedback
 * and the match's history, then stream the model's lines: each line becomes an opener once it is
 * complete, clean, safe and new, and only then is it saved.
 */
import { Clock, Effect, Option, Schema, Stream } from "effect"
import { randomUUID } from "node:crypto"
import type { AiError } from "../../core/ai/errors.ts"
import { AiStrategy, type TextRequest } from "../../core/ai/strategy.ts"
import { aiErrorToWire, type AiWireError } from "../../core/ai/wire.ts"
import { AppConfig } from "../../core/config.ts"
import { Tombstones } from "../../core/erasure.ts"
import { notFound } from "../../core/ownership.ts"
import { answeringRefusal, Quotas } from "../../core/quota/quotas.ts"
import { toPage } from "../../core/pagination.ts"
import { Storage } from "../../core/storage/storage.ts"
import { type NotFound, SafetyBlocked, type Unauthorized } from "../../domain/errors.ts"
import { ExtractedProfile } from "../../domain/matches.ts"
import type { BlockedReason, GenerateOpeners, Opener as OpenerView, OpenerEvent } from "../../domain/openers.ts"
import { Tone } from "../../domain/tones.ts"
import { extractedOf, matchTexts } from "../matches/matches.service.ts"
import { MatchesService } from "../matches/matches.service.ts"
import { UploadsService } from "../uploads/uploads.service.ts"
import { UsersRepo } from "../users/users.repo.ts"
import { type Opener, OpenersRepo } from "./openers.repo.ts"
import {
  localOpeners,
  OPENERS_PROMPT_VERSION,
  type OpenerProfile,
  openersPrompt,
  openersSystem
} from "./prompts/openers-v1.ts"
import { profilePrompt, profileSystem } from "./prompts/profile-v1.ts"
import { cleanLine, impliesMinor, lineBlockedReason, normalizeOpener } from "./safety.ts"

export type { BlockedReason, OpenerEvent }

const MAX_OPENER_CHARS = 300

/** Why a generation's stream fails: the AI chain, its match deleted meanwhile, or its account erased meanwhile. */
export type GenerationFailure = AiError | NotFound | Unauthorized

/**
 * A generation stream's failure as the API sends it: the AI chain's as its wire error, a match
 * deleted or an account erased meanwhile as it is.
 */
export const generationFailureToWire = (
  error: GenerationFailure
): Effect.Effect<never, AiWireError | NotFound | Unauthorized> =>
  error._tag === "NotFound" || error._tag === "Unauthorized" ? Effect.fail(error) : aiErrorToWire(error)

/** A generation's id (its openers' `batchId`); the SSE event ids carry it. */
export const newBatchId = () => randomUUID().replaceAll("-", "")

export const toOpenerView = (opener: Opener): OpenerView => ({
  id: opener.id,
  matchId: opener.matchId,
  batchId: opener.batchId,
  position: opener.position,
  text: opener.text,
  tone: Schema.is(Tone)(opener.tone) ? opener.tone : "playful",
  language: opener.language,
  promptVersion: opener.promptVersion,
  provider: opener.provider,
  model: opener.model,
  feedback: opener.feedback === "liked" || opener.feedback === "disliked" ? opener.feedback : null,
  dislikeReason: opener.dislikeReason,
  createdAt: opener.createdAt
})

const minorRefused = () =>
  new SafetyBlocked({
    message: "This profile states or implies someone under 18: Wingmate does not help with that",
    details: { reason: "minor" }
  })

export class OpenersService extends Effect.Service<OpenersService>()("OpenersService", {
  effect: Effect.gen(function* () {
    const repo = yield* OpenersRepo
    const users = yield* UsersRepo
    const matches = yield* MatchesService
    const uploads = yield* UploadsService
    const storage = yield* Storage
    const ai = yield* AiStrategy
    const config = yield* AppConfig
    const quotas = yield* Quotas
    const tombstones = yield* Tombstones

    /** Reads a match's profile screenshot once with the vision model and keeps the result on the match. */
    const readScreenshot = (userId: string, matchId: string, uploadId: string) =>
      Effect.gen(function* () {
        const processed = yield* uploads.process(userId, uploadId)
        const bytes = yield* storage.get(processed.imageKey)
        if (Option.isNone(bytes)) return Option.none<ExtractedProfile>()
        const result = yield* ai.generateObject(
          { feature: "openers.profile", userId },
          {
            schema: ExtractedProfile,
            system: profileSystem,
            prompt: profilePrompt,
            image: { bytes: bytes.value, mimeType: config.images.format === "webp" ? "image/webp" : "image/jpeg" },
            localValue: () => ({ name: null, age: null, bio: null, prompts: [], interests: [] })
          }
        )
        yield* matches.saveExtracted(userId, matchId, result.value)
        return Option.some(result.value)
      }).pipe(
        // A screenshot that cannot be read does not stop the generation: the other fields remain.
        Effect.catchTags({
          UploadNotReceived: () => Effect.succeed(Option.none<ExtractedProfile>()),
          UploadExpired: () => Effect.succeed(Option.none<ExtractedProfile>()),
          UploadSizeMismatch: () => Effect.succeed(Option.none<ExtractedProfile>()),
          UploadTypeMismatch: () => Effect.succeed(Option.none<ExtractedProfile>()),
          UploadContentMismatch: () => Effect.succeed(Option.none<ExtractedProfile>()),
          ImageTooLarge: () => Effect.succeed(Option.none<ExtractedProfile>()),
          ImageUnreadable: () => Effect.succeed(Option.none<ExtractedProfile>()),
          NotFound: () => Effect.succeed(Option.none<ExtractedProfile>())
        })
      )

    const resolveProfile = (userId: string, input: GenerateOpeners) =>
      Effect.gen(function* () {
        if (input.matchId === undefined) {
          const profile: OpenerProfile = input.profile ?? {}
          if (impliesMinor([profile.name, profile.bio, ...(profile.interests ?? [])])) return yield* minorRefused()
          return { matchId: undefined, profile }
        }
        let match = yield* matches.get(userId, input.matchId)
        if (match.profileUploadId !== null && match.extractedProfile === null) {
          const read = yield* readScreenshot(userId, match.id, match.profileUploadId)
          if (Option.isSome(read)) match = yield* matches.get(userId, match.id)
        }
        if (impliesMinor(matchTexts(match))) return yield* minorRefused()
        const extracted = extractedOf(match)
        if (extracted?.age !== null && extracted?.age !== undefined && extracted.age < 18) return yield* minorRefused()
        const profile: OpenerProfile = {
          name: match.name,
          bio: match.bio ?? extracted?.bio,
          interests: [...new Set([...match.interests, ...(extracted?.interests ?? [])])],
          prompts: extracted?.prompts ?? [],
          notes: match.notes,
          platform: match.platform
        }
        return { matchId: match.id, profile }
      })

    /** Today's generation, taken atomically before any model call (a read-then-act check is a race). */
    const takeQuota = (userId: string) =>
      quotas
        .take(userId, "openers", config.openers.dailyLimit)
        .pipe(answeringRefusal((limit) => `Daily limit of ${limit} opener generations reached`))

    const prepare = (userId: string, input: GenerateOpeners, produced: { saved: number }, batchId: string) =>
      Effect.gen(function* () {
        // The spend cap too, so that an SSE client gets a 429 rather than a stream ending in an error.
        yield* ai.checkBudget({ feature: "openers", userId })
        const { matchId, profile } = yield* resolveProfile(userId, input)
        const user = yield* users.findById(userId)
        const tone: Tone = input.tone ?? (Schema.is(Tone)(user?.defaultTone) ? user.defaultTone : "playful")
        const language = input.language ?? user?.preferredLanguage ?? "en"
        const history = yield* repo.history(userId, matchId)
        const promptInput = {
          profile,
          tone,
          language,
          count: input.count,
          liked: history.liked.map((o) => o.text),
          disliked: history.disliked.map((o) => ({ text: o.text, reason: o.dislikeReason })),
          previous: history.previous.map((o) => o.text)
        }
        const seen = new Set(promptInput.previous.map(normalizeOpener))
        const request: TextRequest = {
          system: openersSystem(promptInput),
          prompt: openersPrompt(promptInput),
          maxOutputTokens: 120 * input.count + 60,
          temperature: 0.9,
          // Openers stream to a waiting user: hidden thinking would come before the first delta.
          thinkingBudget: 0,
          localText: () => localOpeners(promptInput)
        }
        // Whether this very call fits under the cap, still before the stream (and an SSE 200) starts.
        yield* ai.checkBudget({ feature: "openers", userId }, request)

        return Stream.suspend(() => {
          let buffer = ""
          let index = 0
          let blocked = 0

          const finishLine = (raw: string): Effect.Effect<ReadonlyArray<OpenerEvent>, NotFound | Unauthorized> =>
            Effect.gen(function* () {
              const text = cleanLine(raw)
              if (text === "") return []
              const position = index++
              if (position >= input.count) return []
              const reason = lineBlockedReason(text, {
                maxChars: MAX_OPENER_CHARS,
                policy: config.openers.safetyPolicy,
                seen
              })
              if (reason !== undefined) {
                blocked++
                return [{ _tag: "blocked", index: position, reason }]
              }
              seen.add(normalizeOpener(text))
              const saved = yield* repo
                .create({
                  userId,
                  matchId: matchId ?? null,
                  batchId,
                  position,
                  text,
                  tone,
                  language,
                  promptVersion: OPENERS_PROMPT_VERSION,
                  provider: meta.provider,
                  model: meta.model
                })
                .pipe(Effect.orDie)
              // Its match or its user is gone, or the account's erasure has started. The foreign key
              // PostgreSQL names does not tell them apart (an erased user's matches go with it): the
              // tombstone does.
              if (saved === null) return yield* tombstones.missingUnlessErased(userId, notFound("Match"))
              produced.saved++
              return [{ _tag: "done", index: position, opener: toOpenerView(saved) }]
            })

          // Who answers: set by the strategy's Started event, before any text.
          const meta = { provider: "unknown", model: "unknown" }

          return ai.streamText({ feature: "openers", userId }, request).pipe(
            Stream.mapEffect((event): Effect.Effect<ReadonlyArray<OpenerEvent>, NotFound | Unauthorized> => {
              if (event._tag === "Started") {
                meta.provider = event.provider
                meta.model = event.model
                return Effect.succeed([])
              }
              if (event._tag === "Completed") {
                const last = buffer
                buffer = ""
                return Effect.map(finishLine(last), (events) => [
                  ...events,
                  {
                    _tag: "final",
                    meta: {
                      batchId,
                      provider: event.provider,
                      model: event.model,
                      local: event.local,
                      usage: event.usage,
                      costMicros: event.costMicros,
                      blocked
                    }
                  }
                ])
              }
              return Effect.gen(function* () {
                const out: Array<OpenerEvent> = []
                const parts = event.text.split("\n")
                for (let i = 0; i < parts.length; i++) {
                  const part = parts[i] ?? ""
                  buffer += part
                  if (part !== "" && index < input.count && buffer.trim() !== "") {
                    out.push({ _tag: "delta", index, text: part })
                  }
                  if (i < parts.length - 1) {
                    const line = buffer
                    buffer = ""
                    out.push(...(yield* finishLine(line)))
                  }
                }
                return out
              })
            }),
            Stream.flattenIterables
          )
        })
      })

    /**
     * Checks before any model call (quota, ownership, minors), then the stream of events. The
     * stream fails with the AI chain's error, `NotFound` when the match is deleted meanwhile, or
     * `Unauthorized` (`account-erased`) when the account is erased meanwhile (before the stream
     * too); openers already done stay saved (with their match or their account, they are gone).
     */
    const generate = (userId: string, input: GenerateOpeners, batchId: string = newBatchId()) =>
      Effect.gen(function* () {
        // The quota first: resolving a match's profile may call the vision model on its screenshot.
        const reservation = yield* takeQuota(userId)
        // Openers saved so far: once one is, the generation counts whatever happens next.
        const produced = { saved: 0 }
        // Given back if nothing reaches the user: a refusal below, a failure or a disconnect before the first opener.
        const settle = quotas.settleOn(reservation, () => produced.saved > 0)
        const events = yield* Effect.onExit(
          prepare(userId, input, produced, batchId).pipe(
            // The match went with an account erased while its screenshot was read.
            Effect.catchTag("NotFound", (missing) => tombstones.missingUnlessErased(userId, missing))
          ),
          settle
        )
        return Stream.ensuringWith(events, settle)
      })

    const feedback = (
      userId: string,
      openerId: string,
      change: (current: Opener) => { feedback: string | null; dislikeReason: string | null; feedbackAt: Date | null }
    ) =>
      Effect.gen(function* () {
        const current = yield* repo.find(userId, openerId)
        if (current === null) return yield* notFound("Opener")
        const next = change(current)
        if (next.feedback === current.feedback && next.dislikeReason === current.dislikeReason)
          return toOpenerView(current)
        const updated = yield* repo.setFeedback(userId, openerId, next)
        if (updated === null) return yield* notFound("Opener")
        return toOpenerView(updated)
      })

    const now = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis))

    return {
      generate,
      list: (userId: string, matchId: string | undefined, limit: number, cursor: string | undefined) =>
        Effect.map(repo.list(userId, matchId, limit, cursor), (rows) => toPage(rows, limit, toOpenerView)),
      like: (userId: string, openerId: string) =>
        Effect.flatMap(now, (at) =>
          feedback(userId, openerId, () => ({ feedback: "liked", dislikeReason: null, feedbackAt: at }))
        ),
      unlike: (userId: string, openerId: string) =>
        feedback(userId, openerId, (current) =>
          current.feedback === "liked"
            ? { feedback: null, dislikeReason: null, feedbackAt: null }
            : { feedback: current.feedback, dislikeReason: current.dislikeReason, feedbackAt: current.feedbackAt }
        ),
      dislike: (userId: string, openerId: string, reason: string | undefined) =>
        Effect.flatMap(now, (at) =>
          feedback(userId, openerId, () => ({
            feedback: "disliked",
            dislikeReason: reason === undefined || reason === "" ? null : reason,
            feedbackAt: at
          }))
        ),
      /** Clears a dislike (and its reason); a like, or no feedback, stays as it is (idempotent). */
      undislike: (userId: string, openerId: string) =>
        feedback(userId, openerId, (current) =>
          current.feedback === "disliked"
            ? { feedback: null, dislikeReason: null, feedbackAt: null }
            : { feedback: current.feedback, dislikeReason: current.dislikeReason, feedbackAt: current.feedbackAt }
        )
    } as const
  }),
  dependencies: [OpenersRepo.Default, Quotas.Default, Tombstones.Default]
}) {}
