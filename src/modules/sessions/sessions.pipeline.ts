/**
 * The sessions pipeline, run by the queue's consumer for one session:
 *   normalise every image (uploads.processWithImage; its thumbnail, writes and record while it is
 *   read, see `imagesStored`) → OCR each image in parallel (the Ocr service; the
 *   same image hash of the same user reuses the earlier result; the first image's messages are
 *   published as `Lines` while the vision model writes them) → merge in order without the
 *   overlap of consecutive screenshots → persist the transcript and publish it → stream the
 *   suggestions (deltas published; each complete, checked line saved) → completed. The
 *   suggestions are asked for while the transcript is saved; nothing of theirs is saved or
 *   published before it.
 * Each phase is idempotent (rows keyed by position, conditional updates), so a retry resumes
 * without duplicates; a cancelled or deleted session stops it. Each attempt takes the session with
 * a token of its own when it reads it, and every write after that is conditioned on the token: an
 * attempt whose job another took over (its lock lost while it was paused) writes nothing more and
 * stops quietly, even if it wakes up after the other completed the session. Once OCR has succeeded (the
 * transcript saved) no full-size copy of a screenshot is kept, original or normalised: the
 * screenshots are other people's messages. A retry that finds the transcript saved deletes them
 * again (the attempt before may have died first) and never reads the images. A session that
 * fails deletes them too (cancelling and deleting one do, in the api); whatever a crash or a failed
 * deletion leaves, the upload sweep deletes once the session has ended. Only the small thumbnail
 * stays, for the app's history, and goes with the session. Failures end as `failed` with a
 * catalog code (transient ones are retried by the queue first). Nothing logged carries message
 * text or image bytes.
 */
import { Cause, Clock, Deferred, Duration, Effect, Fiber, Layer, Option, Schema } from "effect"
import type { AiError } from "../../core/ai/errors.ts"
import { AppConfig } from "../../core/config.ts"
import { newId } from "../../core/db/ids.ts"
import { recordSessionPhase, recordSessionsReconciled } from "../../core/metrics.ts"
import { OcrFailed } from "../../core/ocr/errors.ts"
import { makeCoalescingPublisher } from "../../core/progress/coalescing.ts"
import { ocrCacheServes, ocrCacheTag } from "../../core/ocr/local.ts"
import { Ocr, type StreamedMessage } from "../../core/ocr/ocr.ts"
import { Transcript } from "../../core/ocr/transcript.ts"
import { JobFailedPermanently, type Job } from "../../core/queue/job-queue.ts"
import { utcDayOf } from "../../core/quota/quotas.ts"
import { Storage } from "../../core/storage/storage.ts"
import { codeOf, type ErrorCode } from "../../domain/errors.ts"
import type {
  SessionEvent,
  SessionMessage,
  SessionPhase,
  SessionProgressState,
  SessionSuggestion
} from "../../domain/sessions.ts"
import type { ProcessedFields } from "../uploads/uploads.repo.ts"
import { fullSizeKeysOf, type StoreError, sweepEvery, UploadsService } from "../uploads/uploads.service.ts"
import { mergeTranscripts } from "./merge.ts"
import { SessionJobs, type SessionJob, sessionFeed } from "./sessions.jobs.ts"
import { type AttemptStopped, type MessageRow, SessionsRepo, type SessionUnit, type StaleKey } from "./sessions.repo.ts"
import { failureMessage, toMessage } from "./sessions.views.ts"
import { SessionSuggester } from "./sessions.suggest.ts"

const SWEEP_BATCH = 100

/**
 * The full-size copies of a session's screenshots: the originals and the normalised images,
 * recorded or not (not the thumbnails).
 */
const fullSizeKeys = (originals: ReadonlyArray<string>): ReadonlyArray<string> => originals.flatMap(fullSizeKeysOf)

/** Two deltas of the same suggestion, or two sets of transcript lines, one after the other, as one. */
const foldStreamed = (previous: SessionEvent, next: SessionEvent): SessionEvent | undefined => {
  if (previous._tag === "Delta" && next._tag === "Delta" && previous.index === next.index)
    return { _tag: "Delta", index: previous.index, text: previous.text + next.text }
  if (previous._tag === "Lines" && next._tag === "Lines")
    return { _tag: "Lines", messages: [...previous.messages, ...next.messages] }
  return undefined
}

/**
 * The least time between two publishes of suggestion deltas: a model streaming ~175 tokens/s
 * (a delta per ~4 characters every ~6 ms) goes out as ~13 larger deltas a second instead of ~175
 * (each costs 1.6–4.9 ms of CPU across worker, Redis and api); 75 ms stays under the ~100 ms at
 * which text appearing in steps stops reading as continuous, and the first delta is not delayed.
 */
const DELTA_INTERVAL = Duration.millis(75)

/**
 * The least time between two publishes of transcript lines: the first line goes out at once (it is
 * what the user waits for), the rest of the screenshot's ~10 lines in two or three steps while the
 * model writes them (~0.7 s) rather than one publish per line, each a round trip through Redis and
 * the api (measured: ~1.5 ms of CPU per publish across the processes).
 */
const LINES_INTERVAL = Duration.millis(250)

const AI_CODES: Record<AiError["_tag"], ErrorCode> = {
  AiUnavailable: "AI_UNAVAILABLE",
  AiStreamFailed: "AI_UNAVAILABLE",
  AiRejected: "AI_REQUEST_REJECTED",
  AiInvalidOutput: "AI_INVALID_OUTPUT",
  AiQuotaExceeded: "QUOTA_EXCEEDED"
}

const isAiTag = (tag: string): tag is AiError["_tag"] => tag in AI_CODES

/** The catalog code a failed session reports. */
export const failureCode = (error: { readonly _tag: string }): ErrorCode =>
  isAiTag(error._tag) ? AI_CODES[error._tag] : error._tag === "OcrFailed" ? "OCR_FAILED" : codeOf(error)

/** Failures worth another attempt: a provider or a dependency that may come back. */
const TRANSIENT = new Set(["AiUnavailable", "AiStreamFailed", "DbError", "StorageError", "ProgressBusError"])

export class SessionPipeline extends Effect.Service<SessionPipeline>()("SessionPipeline", {
  effect: Effect.gen(function* () {
    const repo = yield* SessionsRepo
    const uploads = yield* UploadsService
    const storage = yield* Storage
    const ocr = yield* Ocr
    const suggester = yield* SessionSuggester
    const config = yield* AppConfig
    const feed = yield* sessionFeed
    const jobs = yield* SessionJobs
    const mimeType = config.images.format === "webp" ? ("image/webp" as const) : ("image/jpeg" as const)

    const now = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis))

    /**
     * Deletes the full-size copies of an ended session's screenshots, unless their retention runs
     * (the sessions sweeper deletes them then). A failure is logged: the upload sweep deletes them.
     */
    const removeFullSize = (sessionId: string) =>
      Effect.gen(function* () {
        const row = yield* repo.originalsOf(sessionId)
        if (row === null || row.originalsExpireAt !== null) return
        yield* storage.remove(fullSizeKeys(row.images.map((image) => image.upload.key)))
      }).pipe(Effect.catchAll((error) => Effect.logWarning("Session screenshots not deleted (the sweep will)", error)))

    /**
     * Marks the session failed with `code`, deletes its full-size screenshots and publishes it;
     * false when it had already ended, or (by an `attempt`) when another attempt owns it. What the
     * attempts consumed before failing is the session's cost too. `unit`: its daily unit is given
     * back in the same statement.
     */
    const markFailed = (sessionId: string, code: ErrorCode, attempt?: string, unit?: SessionUnit) =>
      Effect.gen(function* () {
        if (attempt !== undefined) {
          const failed = yield* repo.failOwned(sessionId, attempt, code, yield* now, unit).pipe(
            Effect.as(true),
            Effect.catchTag("AttemptStopped", (stopped) =>
              Effect.as(
                stopped.reason === "superseded"
                  ? Effect.logWarning("Session attempt superseded: its failure not recorded").pipe(
                      Effect.annotateLogs({ sessionId, code })
                    )
                  : Effect.void,
                false
              )
            )
          )
          if (!failed) return false
        } else {
          const at = yield* now
          const failed = yield* unit === undefined
            ? repo.advance(sessionId, { status: "failed", phase: null, errorCode: code, completedAt: at })
            : repo.failRunning(sessionId, code, at, unit)
          if (!failed) return false
          yield* repo
            .syncCost(sessionId)
            .pipe(Effect.catchAll((error) => Effect.logWarning("Session cost not synced", error)))
        }
        // Whatever the failure, no full-size copy outlives the session's end.
        yield* removeFullSize(sessionId)
        yield* feed
          .publish(
            sessionId,
            { _tag: "Failed", code, message: failureMessage(code) },
            { state: { status: "failed", phase: null, errorCode: code } }
          )
          .pipe(Effect.catchAll((error) => Effect.logWarning("Session progress not published", error)))
        yield* Effect.logWarning("Session failed").pipe(Effect.annotateLogs({ sessionId, code }))
        return true
      })

    /** One attempt of a session's job, `attempt` its token (see the module comment). */
    const run = (payload: SessionJob, attempt: string) =>
      Effect.gen(function* () {
        const { sessionId, userId } = payload
        // Takes the session for this attempt if it still runs (queued or processing).
        const session = yield* repo.findForJob(sessionId, attempt)
        if (session === null || session.userId !== userId || !session.claimed) return

        const timings: Record<string, number> = {}
        // When processing first began: kept across phases and across retries.
        const startedAt = session.startedAt ?? (yield* now)
        const state = (phase: SessionPhase | null): SessionProgressState => ({
          status: "processing",
          phase,
          errorCode: null
        })
        const publish = (event: SessionEvent, next?: SessionProgressState) =>
          feed.publish(sessionId, event, next === undefined ? {} : { state: next }).pipe(
            Effect.catchAll((error) => Effect.logWarning("Session progress not published", error)),
            Effect.asVoid
          )
        // The streamed events (transcript lines as they are read, the suggestions' events), in order,
        // without holding the stream up for each round trip: what arrives within the interval goes out as one.
        const lines = yield* makeCoalescingPublisher(publish, foldStreamed, LINES_INTERVAL)
        const streamed = yield* makeCoalescingPublisher(publish, foldStreamed, DELTA_INTERVAL)
        const enter = (phase: SessionPhase) =>
          Effect.gen(function* () {
            yield* repo.enterPhase(sessionId, attempt, phase, startedAt, timings, yield* now)
            yield* publish({ _tag: "Status", status: "processing", phase }, state(phase))
          })
        // Each phase's work: timed for the session's `timings`, and a `sessions.phase` span (ids only).
        const timed = <A, E, R>(phase: SessionPhase, effect: Effect.Effect<A, E, R>) =>
          Effect.gen(function* () {
            const start = yield* Clock.currentTimeMillis
            const elapsed = Effect.map(Clock.currentTimeMillis, (now) => now - start)
            const result = yield* Effect.onError(effect, (cause) =>
              Cause.isInterruptedOnly(cause)
                ? Effect.void
                : Effect.flatMap(elapsed, (ms) => recordSessionPhase(phase, "error", ms))
            )
            const ms = yield* elapsed
            timings[phase] = ms
            yield* recordSessionPhase(phase, "ok", ms)
            return result
          }).pipe(
            Effect.withSpan("sessions.phase", {
              captureStackTrace: false,
              attributes: { "session.id": sessionId, "session.phase": phase, "session.images": session.images.length }
            })
          )

        // Each screenshot just normalised is stored and recorded while it is read: its thumbnail,
        // its two writes and its row are off the way to the vision call, and start once the model
        // writes its first message (~0.9 s in: the images of a burst's other sessions are normalised
        // by then, not held behind these; issue #17). They are done before the transcript is saved
        // (a retry that finds it saved never reads the images), while the suggestions' call waits for
        // its first token, and, should the normalisation of another screenshot or the read fail,
        // before the session fails (the thumbnail stays). A stopped attempt finishes them too.
        const storeNow = yield* Deferred.make<void>()
        const storing: Array<Fiber.RuntimeFiber<void, StoreError<AttemptStopped>>> = []
        const imagesStored = Effect.zipRight(
          Deferred.succeed(storeNow, undefined),
          Effect.suspend(() => Effect.forEach(storing, Fiber.join, { discard: true }))
        )
        const storedOnFailure = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
          Effect.onError(effect, (cause) =>
            Cause.isInterruptedOnly(cause) ? Effect.void : Effect.ignore(imagesStored)
          )
        // Normalise and OCR, unless an earlier attempt already saved the transcript.
        let stored: ReadonlyArray<MessageRow & { readonly position: number }> = session.messages
        // What this attempt read (the transcript was not saved yet): saved below.
        let read: { readonly rows: ReadonlyArray<MessageRow> } | undefined
        if (stored.length === 0) {
          yield* enter("normalise")
          const images = yield* timed(
            "normalise",
            Effect.forEach(
              session.images,
              (image) =>
                image.contentHash !== null && image.imageKey !== null && image.thumbnailKey !== null
                  ? Effect.succeed({ contentHash: image.contentHash, imageKey: image.imageKey, bytes: undefined })
                  : Effect.gen(function* () {
                      // The upload as the job's read found it; recorded with the session's image in one statement,
                      // while the session runs. Ended meanwhile (whoever ended it deleted what was recorded): the
                      // full-size image this attempt wrote goes, its thumbnail stays with the session (or goes, the
                      // session deleted), and the attempt stops.
                      const record = (uploadId: string, fields: ProcessedFields) =>
                        repo.setImage({ sessionId, attempt }, image.id, uploadId, fields).pipe(
                          Effect.tapError((stopped) =>
                            // Superseded: the attempt that owns the session writes (and records) the same
                            // keys, so what was written here stays.
                            stopped._tag === "AttemptStopped" && stopped.reason === "ended"
                              ? Effect.gen(function* () {
                                  yield* storage.remove([fields.imageKey])
                                  if (!(yield* repo.keepThumbnail(image.id, uploadId, fields.thumbnailKey)))
                                    yield* storage.remove([fields.thumbnailKey])
                                }).pipe(
                                  Effect.catchAll((error) =>
                                    Effect.logWarning("Images of an ended session not deleted (the sweep will)", error)
                                  )
                                )
                              : Effect.void
                          )
                        )
                      const {
                        processed,
                        image: bytes,
                        store
                      } = yield* uploads.processWithImage(userId, image.uploadId, {
                        known: { upload: image.upload, erased: session.erased },
                        record,
                        storeLater: true
                      })
                      // Processed by an earlier attempt that stopped before the session's image was recorded.
                      if (bytes === undefined) yield* record(image.uploadId, { ...processed, processedAt: yield* now })
                      if (store !== undefined) storing.push(yield* Effect.forkScoped(store(Deferred.await(storeNow))))
                      return { contentHash: processed.contentHash, imageKey: processed.imageKey, bytes }
                    }),
              { concurrency: 2 }
            ).pipe(storedOnFailure)
          )

          yield* enter("ocr")
          const transcripts = yield* timed(
            "ocr",
            Effect.forEach(
              images,
              (image, index) =>
                Effect.gen(function* () {
                  const cached = yield* repo.cachedOcr(userId, image.contentHash)
                  // A local read of another language (its model read the other script), or one cached before
                  // the transcript's limits, is read again, and the new read takes its place in the cache.
                  if (cached !== null && ocrCacheServes(cached.provider, session.language)) {
                    const decoded = Schema.decodeUnknownOption(Transcript)(cached.transcript)
                    if (Option.isSome(decoded)) return decoded.value
                  }
                  // Just normalised: the bytes are at hand, no need to read them back from storage.
                  const bytes =
                    image.bytes === undefined ? yield* storage.get(image.imageKey) : Option.some(image.bytes)
                  if (Option.isNone(bytes)) {
                    return yield* new OcrFailed({
                      reason: "unreadable-image",
                      message: "The image is no longer stored"
                    })
                  }
                  const transcript = yield* ocr.read(
                    { feature: "sessions.ocr", userId, sessionId },
                    { bytes: bytes.value, mimeType },
                    {
                      // Local OCR reads with the model of the session's language (the user's by default).
                      language: session.language,
                      // The first screenshot's lines go to the app as the model writes them (its positions are
                      // the transcript's: merging keeps the first screenshot whole).
                      ...(index === 0
                        ? {
                            onMessage: (position: number, message: StreamedMessage) =>
                              Effect.zipRight(
                                Deferred.succeed(storeNow, undefined),
                                lines.offer({ _tag: "Lines", messages: [{ position, ...message }] })
                              )
                          }
                        : {})
                    }
                  )
                  yield* repo.cacheOcr(
                    session.id,
                    userId,
                    image.contentHash,
                    Schema.encodeSync(Transcript)(transcript),
                    ocrCacheTag(transcript.engine, session.language),
                    cached ?? undefined
                  )
                  return transcript
                }),
              { concurrency: "unbounded" }
            ).pipe(Effect.ensuring(lines.flush), storedOnFailure)
          )

          const merged = mergeTranscripts(transcripts.map((transcript) => transcript.messages))
          if (merged.length === 0) {
            yield* imagesStored
            return yield* new OcrFailed({ reason: "no-text", message: "No message was read from the screenshots" })
          }
          read = {
            rows: merged.map(({ sender, text, time, confidence }) => ({ sender, text, time, confidence }))
          }
          stored = read.rows.map((row, position) => ({ ...row, position }))
        }

        // The suggestions are asked for as soon as the transcript is known: the provider's first token
        // (~0.4 s) hides the transcript's save and publish. What they write, rows and events, waits
        // until the transcript event is out: the app sees the transcript first, and a retry finds it
        // saved before any suggestion. (Their phase's timing therefore overlaps the transcript's.)
        const transcriptOut = yield* Deferred.make<void>()
        const kept: Array<SessionSuggestion> = []
        const suggest = (transcript: ReadonlyArray<SessionMessage>) =>
          timed(
            "suggestions",
            suggester.write(
              {
                sessionId,
                userId,
                matchId: session.matchId,
                batch: 0,
                tone: session.tone,
                language: session.language,
                context: session.context,
                instruction: null,
                transcript,
                avoid: [],
                // Suggestions are written after the transcript: only an attempt that found one saved
                // can follow another that wrote some.
                rewrite: session.messages.length > 0,
                attempt
              },
              (event) => {
                if (event._tag === "Suggestion") kept[event.index] = event.suggestion
                return streamed.offer(event)
              },
              Deferred.await(transcriptOut)
            )
          ).pipe(Effect.forkScoped)
        let suggesting = yield* suggest(stored.map(toMessage))

        // OCR succeeded and the transcript is saved (so a retry never needs the images again): the
        // full-size copies go, originals and normalised images, now or after the retention; also on a
        // retry that found the transcript saved (the attempt that saved it may have died before this).
        // A deletion that fails is logged: the upload sweep deletes them once the session has ended.
        // The thumbnails stay with the session.
        const dropFullSize = (retry: boolean) =>
          Effect.gen(function* () {
            const retention = config.sessions.screenshotRetentionSeconds
            if (retention > 0) {
              const at = yield* Clock.currentTimeMillis
              yield* repo.setOriginalsExpiryOwned(sessionId, attempt, new Date(at + retention * 1000), new Date(at), {
                ifUnset: retry
              })
            } else {
              yield* storage
                .remove(fullSizeKeys(session.images.map((image) => image.upload.key)))
                .pipe(
                  Effect.catchAll((error) =>
                    Effect.logWarning("Session screenshots not deleted (the sweep will)", error)
                  )
                )
            }
          })
        if (read !== undefined) {
          const rows = read.rows
          yield* imagesStored
          yield* enter("transcript")
          const saved = yield* timed("transcript", repo.saveTranscript(sessionId, attempt, rows))
          yield* dropFullSize(false)
          // Rows left by another attempt running at the same time: theirs are the transcript, and the
          // suggestions are asked for again from them.
          if (saved.count !== rows.length) {
            yield* Fiber.interrupt(suggesting)
            stored = yield* repo.messages(sessionId)
            suggesting = yield* suggest(stored.map(toMessage))
          }
        } else {
          yield* dropFullSize(true)
        }
        const transcript = stored.map(toMessage)
        yield* publish({ _tag: "Transcript", messages: transcript })

        // Suggestions (batch 0; a retry rewrites it).
        yield* enter("suggestions")
        yield* Deferred.succeed(transcriptOut, undefined)
        const result = yield* Fiber.join(suggesting).pipe(
          Effect.ensuring(streamed.flush),
          // No suggestion could be kept, twice: the session fails and its daily unit is given back
          // (once: only by the attempt that marks it failed, in the same statement).
          Effect.tapErrorTag("AiEmptyResult", () =>
            markFailed(sessionId, "AI_EMPTY_RESULT", attempt, {
              userId: session.userId,
              day: utcDayOf(session.createdAt.getTime())
            })
          )
        )

        const costMicros = yield* repo.complete(sessionId, attempt, yield* now, timings)
        yield* publish(
          {
            _tag: "Completed",
            suggestions: kept.filter((suggestion) => suggestion !== undefined),
            costMicros,
            timings
          },
          { status: "completed", phase: null, errorCode: null }
        )
        yield* Effect.logInfo("Session completed").pipe(
          Effect.annotateLogs({ sessionId, messages: transcript.length, suggestions: result.count })
        )
      }).pipe(
        Effect.scoped,
        // Cancelled, finished or deleted meanwhile: nothing more to do. Taken over by another
        // attempt (this one's lock lost): what this attempt was doing is dropped, the other's stands.
        Effect.catchTag("AttemptStopped", (stopped) =>
          stopped.reason === "superseded"
            ? Effect.logWarning("Session attempt superseded: another attempt owns the session; stopped").pipe(
                Effect.annotateLogs({ sessionId: payload.sessionId })
              )
            : Effect.void
        )
      )

    const onFailure = <E extends { readonly _tag: string }>(
      job: Job<SessionJob>,
      attempt: string,
      error: E
    ): Effect.Effect<never, E | JobFailedPermanently> => {
      const code = failureCode(error)
      if (TRANSIENT.has(error._tag) && job.attempt < job.maxAttempts) {
        return Effect.zipRight(
          Effect.logWarning("Session attempt failed, to be retried").pipe(
            Effect.annotateLogs({ sessionId: job.id, attempt: job.attempt, code })
          ),
          Effect.fail(error)
        )
      }
      return Effect.zipRight(
        markFailed(job.payload.sessionId, code, attempt).pipe(Effect.orDie),
        Effect.fail(new JobFailedPermanently({ reason: code }))
      )
    }

    /**
     * The queue's handler: transient failures retried while attempts remain, then `failed` with a
     * code. Each call is an attempt with a token of its own (a stall's takeover included).
     */
    const handle = (job: Job<SessionJob>) =>
      Effect.suspend(() => {
        const attempt = newId()
        return run(job.payload, attempt).pipe(
          Effect.catchAll((error) => onFailure(job, attempt, error)),
          Effect.catchAllDefect((defect) =>
            job.attempt < job.maxAttempts
              ? Effect.die(defect)
              : Effect.zipRight(
                  Effect.logError("Session failed unexpectedly", defect).pipe(
                    Effect.annotateLogs({ sessionId: job.id })
                  ),
                  Effect.zipRight(
                    markFailed(job.payload.sessionId, "INTERNAL_ERROR", attempt).pipe(Effect.orDie),
                    Effect.fail(new JobFailedPermanently({ reason: "INTERNAL_ERROR" }))
                  )
                )
          ),
          Effect.withSpan("sessions.job", { attributes: { "session.id": job.id, "job.attempt": job.attempt } })
        )
      })

    /** Deletes the full-size screenshots whose retention is over (SESSION_SCREENSHOT_RETENTION_SECONDS > 0). */
    const sweepOriginals = Effect.gen(function* () {
      let removed = 0
      for (;;) {
        const due = yield* repo.originalsDue(yield* now, SWEEP_BATCH)
        for (const row of due) {
          yield* storage.remove(fullSizeKeys(row.images.map((image) => image.upload.key)))
          yield* repo.setOriginalsExpiry(row.id, null)
          removed++
        }
        if (due.length < SWEEP_BATCH) break
      }
      if (removed > 0)
        yield* Effect.logInfo("Sweep: session screenshots deleted").pipe(Effect.annotateLogs({ removed }))
    })

    /**
     * Every session still queued or processing, untouched since `before`: one whose job is gone
     * (Redis restarted empty or failed over and lost it, or the in-process queue restarted) is
     * enqueued again and resumes where it stopped (each phase is idempotent); one whose job the
     * queue ended without the session ending (BullMQ fails a job that stalled, its worker dead, more
     * than QUEUE_MAX_STALLED_COUNT times) fails with INTERNAL_ERROR, its daily unit given back;
     * a job still waiting, delayed or running is left alone.
     */
    const reconcile = (before: Date) =>
      Effect.gen(function* () {
        let requeued = 0
        let givenUp = 0
        let after: StaleKey | undefined
        for (;;) {
          const rows = yield* repo.untouchedRunning(before, after, SWEEP_BATCH)
          for (const row of rows) {
            const state = yield* jobs.state(row.id)
            if (Option.isNone(state)) {
              yield* jobs.enqueue(row.id, { sessionId: row.id, userId: row.userId })
              requeued++
            } else if (
              (state.value === "failed" || state.value === "completed") &&
              (yield* markFailed(row.id, "INTERNAL_ERROR", undefined, {
                userId: row.userId,
                day: utcDayOf(row.createdAt.getTime())
              }))
            ) {
              givenUp++
            }
          }
          if (rows.length < SWEEP_BATCH) break
          after = rows.at(-1)
        }
        yield* recordSessionsReconciled("requeued", requeued)
        yield* recordSessionsReconciled("failed", givenUp)
        if (requeued > 0)
          yield* Effect.logWarning("Reconcile: sessions whose job was gone enqueued again").pipe(
            Effect.annotateLogs({ requeued })
          )
        if (givenUp > 0)
          yield* Effect.logError("Reconcile: sessions whose job the queue ended without them failed").pipe(
            Effect.annotateLogs({ failed: givenUp })
          )
        return { requeued, failed: givenUp }
      })

    return { run, handle, sweepOriginals, reconcile } as const
  }),
  dependencies: [SessionsRepo.Default, SessionSuggester.Default]
}) {}

/**
 * The consumer: a pool of fibers (QUEUE_CONCURRENCY) running the pipeline until the layer's
 * scope closes (then running jobs finish or are handed back).
 */
export const SessionsConsumerLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const jobs = yield* SessionJobs
    const pipeline = yield* SessionPipeline
    yield* Effect.logInfo(`Sessions consumer: ${jobs.backend} queue "${jobs.name}"`)
    yield* jobs.consume(pipeline.handle)
  })
)

/** The sweeper of retained originals, beside the consumer (every UPLOAD_SWEEP_INTERVAL_SECONDS). */
export const SessionsSweeperLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const pipeline = yield* SessionPipeline
    const config = yield* AppConfig
    if (config.sessions.screenshotRetentionSeconds === 0) return
    yield* sweepEvery(
      Duration.seconds(config.uploads.sweepIntervalSeconds),
      pipeline.sweepOriginals,
      "Sweep of retained screenshots"
    )
  })
)

/** The reconciler of lost jobs, beside the consumer (every SESSION_RECONCILE_SECONDS; 0: off). */
export const SessionsReconcilerLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const pipeline = yield* SessionPipeline
    const config = yield* AppConfig
    const seconds = config.sessions.reconcileSeconds
    if (seconds === 0) return
    yield* sweepEvery(
      Duration.seconds(seconds),
      Effect.flatMap(Clock.currentTimeMillis, (now) => pipeline.reconcile(new Date(now - seconds * 1000))),
      "Reconcile of lost session jobs"
    )
  })
)
