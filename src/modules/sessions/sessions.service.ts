/**
 * Sessions, the api side: create (take the uploads, save the session, queue its job), read,
 * list, follow (the progress feed), cancel and delete. The pipeline itself runs in the worker
 * (sessions.pipeline.ts).
 */
import { Clock, Duration, Effect, Layer, Option, Ref, Schema, Stream } from "effect"
import { AppConfig } from "../../core/config.ts"
import { Erasure, Tombstones } from "../../core/erasure.ts"
import { notFound } from "../../core/ownership.ts"
import { toPage } from "../../core/pagination.ts"
import {
  answeringRefusal,
  QuotaRefused,
  Quotas,
  type Reservation,
  secondsToNextUtcDay,
  utcDayOf
} from "../../core/quota/quotas.ts"
import type { ProgressItem } from "../../core/progress/progress-bus.ts"
import { Storage } from "../../core/storage/storage.ts"
import {
  BadRequest,
  Conflict,
  NotFound,
  ServiceUnavailable,
  UploadAlreadyUsed,
  UploadContentMismatch,
  UploadExpired,
  UploadNotReceived,
  UploadPurposeMismatch,
  UploadSizeMismatch,
  UploadTypeMismatch
} from "../../domain/errors.ts"
import {
  type CreateSession,
  type PatchTranscript,
  type RegenerateSuggestions,
  type Session as SessionView,
  type SessionEvent,
  SessionPhase,
  type SessionProgressState,
  type SessionStreamItem,
  type SessionSummary
} from "../../domain/sessions.ts"
import { MatchesService } from "../matches/matches.service.ts"
import { fullSizeKeysOf, objectKeysOf, UploadsService } from "../uploads/uploads.service.ts"
import { type SessionDetail, SessionsRepo } from "./sessions.repo.ts"
import { failureMessage, timingsOf, toMessage, toneOf, toSuggestion } from "./sessions.views.ts"
import { isTerminalEvent, SessionJobs, sessionFeed } from "./sessions.jobs.ts"
import { type BatchRequest, SessionSuggester } from "./sessions.suggest.ts"

const isPhase = Schema.is(SessionPhase)
const phaseOf = (value: string | null): SessionPhase | null => (isPhase(value) ? value : null)

export const summaryOf = (
  row: Pick<
    SessionDetail,
    "id" | "matchId" | "status" | "phase" | "errorCode" | "tone" | "language" | "createdAt" | "completedAt"
  >,
  imageCount: number
): SessionSummary => ({
  id: row.id,
  matchId: row.matchId,
  status: row.status,
  phase: phaseOf(row.phase),
  errorCode: row.errorCode,
  tone: toneOf(row.tone),
  language: row.language,
  imageCount,
  createdAt: row.createdAt,
  completedAt: row.completedAt
})

const toSessionView = (row: SessionDetail, images: SessionView["images"]): SessionView => ({
  ...summaryOf(row, row.images.length),
  costMicros: row.costMicros,
  timings: timingsOf(row.timings),
  context: row.context,
  images,
  transcript: row.messages.map(toMessage),
  suggestions: row.suggestions.map(toSuggestion)
})

const stateOf = (row: Pick<SessionDetail, "status" | "phase" | "errorCode">): SessionProgressState => ({
  status: row.status,
  phase: phaseOf(row.phase),
  errorCode: row.errorCode
})

const isTerminalStatus = (status: string) => status === "completed" || status === "failed" || status === "cancelled"

/** A finished session's terminal event with its final summary, from the database. */
const terminalEventOf = (row: SessionDetail): SessionEvent =>
  row.status === "failed"
    ? { _tag: "Failed", code: row.errorCode ?? "INTERNAL_ERROR", message: failureMessage(row.errorCode ?? "") }
    : row.status === "cancelled"
      ? { _tag: "Cancelled" }
      : {
          _tag: "Completed",
          suggestions: row.suggestions.map(toSuggestion),
          costMicros: row.costMicros,
          timings: timingsOf(row.timings)
        }

type UseError = Effect.Effect.Error<ReturnType<UploadsService["use"]>>

/** Names the upload a refusal is about (`details.uploadId`), keeping the code and message. */
const naming =
  (uploadId: string) =>
  (error: UseError): UseError => {
    const details = { uploadId }
    switch (error._tag) {
      case "NotFound":
        return new NotFound({ message: error.message, details })
      case "UploadAlreadyUsed":
        return new UploadAlreadyUsed({ message: error.message, details })
      case "UploadNotReceived":
        return new UploadNotReceived({ message: error.message, details })
      case "UploadExpired":
        return new UploadExpired({ message: error.message, details })
      case "UploadSizeMismatch":
        return new UploadSizeMismatch({ message: error.message, details })
      case "UploadTypeMismatch":
        return new UploadTypeMismatch({ message: error.message, details })
      case "UploadContentMismatch":
        return new UploadContentMismatch({ message: error.message, details })
      case "UploadPurposeMismatch":
        return new UploadPurposeMismatch({
          message: error.message,
          details: { ...(typeof error.details === "object" && error.details !== null ? error.details : {}), uploadId }
        })
      default:
        return error
    }
  }

const queueDown = () => new ServiceUnavailable({ message: "The job queue is unavailable; try again shortly" })

export class SessionsService extends Effect.Service<SessionsService>()("SessionsService", {
  effect: Effect.gen(function* () {
    const repo = yield* SessionsRepo
    const uploads = yield* UploadsService
    const matches = yield* MatchesService
    const jobs = yield* SessionJobs
    const feed = yield* sessionFeed
    const storage = yield* Storage
    const suggester = yield* SessionSuggester
    const config = yield* AppConfig
    const quotas = yield* Quotas
    const tombstones = yield* Tombstones

    const now = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis))

    const load = (userId: string, id: string) =>
      Effect.flatMap(repo.find(userId, id), (row) =>
        row === null ? Effect.fail(notFound("Session")) : Effect.succeed(row)
      )

    /**
     * The owner's view, each thumbnail as a short-lived signed GET (only whoever could read the
     * session gets one). A URL that cannot be signed leaves its thumbnail null: the transcript matters more.
     */
    const view = (row: SessionDetail) =>
      Effect.map(
        Effect.forEach(row.images, (image) =>
          Effect.map(
            image.thumbnailKey === null
              ? Effect.succeed(null)
              : storage.signDownload(image.thumbnailKey, config.sessions.thumbnailUrlTtlSeconds).pipe(
                  Effect.map(({ url, expiresAt }) => ({ url, expiresAt })),
                  Effect.catchAll((error) =>
                    Effect.as(Effect.logWarning("Session thumbnail URL not signed", error), null)
                  )
                ),
            (thumbnail) => ({ position: image.position, thumbnail })
          )
        ),
        (images) => toSessionView(row, images)
      )

    const publishQuietly = (id: string, event: SessionEvent, state: SessionProgressState) =>
      feed.publish(id, event, { state }).pipe(
        Effect.catchAll((error) => Effect.logWarning("Session progress not published", error)),
        Effect.asVoid
      )

    /**
     * The full-size copies (originals, normalised images recorded or not) of an ended session's
     * screenshots, unless their retention runs; the thumbnails stay with the session. A failure
     * is logged: the upload sweep deletes them, the session having ended.
     */
    const removeFullSize = (row: Pick<SessionDetail, "images" | "originalsExpireAt">) =>
      row.originalsExpireAt !== null
        ? Effect.void
        : storage
            .remove(row.images.flatMap((image) => fullSizeKeysOf(image.upload.key)))
            .pipe(
              Effect.catchAll((error) => Effect.logWarning("Session screenshots not deleted (the sweep will)", error))
            )

    const notQueued = (id: string, userId: string) =>
      Effect.gen(function* () {
        const failed = yield* repo.advance(id, {
          status: "failed",
          phase: null,
          errorCode: "SERVICE_UNAVAILABLE",
          completedAt: yield* now
        })
        if (failed) {
          const row = yield* repo.find(userId, id)
          if (row !== null) yield* removeFullSize(row)
          yield* publishQuietly(
            id,
            { _tag: "Failed", code: "SERVICE_UNAVAILABLE", message: "The job queue is unavailable; try again shortly" },
            { status: "failed", phase: null, errorCode: "SERVICE_UNAVAILABLE" }
          )
        }
        yield* Effect.logWarning("Session not queued: failed").pipe(Effect.annotateLogs({ sessionId: id }))
      }).pipe(Effect.catchAll((error) => Effect.logError("Session not queued, nor marked failed", error)))

    const create = (userId: string, input: CreateSession) =>
      Effect.gen(function* () {
        if (input.matchId !== undefined) yield* matches.get(userId, input.matchId)
        // Every upload is checked (verified, unused, for sessions) before the transaction takes them.
        for (const uploadId of input.uploadIds)
          yield* uploads.usable(userId, uploadId, "session").pipe(Effect.mapError(naming(uploadId)))
        // Today's unit, the uploads and the rows in one statement: a refusal takes nothing (the
        // uploads stay usable for a retry, the quota unspent).
        const at = yield* now
        const quota: Reservation = { userId, kind: "sessions", day: utcDayOf(at.getTime()), amount: 1 }
        const created = yield* repo.create({
          userId,
          matchId: input.matchId ?? null,
          tone: input.tone ?? null,
          language: input.language ?? null,
          context: input.context ?? null,
          uploadIds: input.uploadIds,
          day: quota.day,
          limit: config.sessions.dailyLimit,
          now: at
        })
        if (created._tag === "UploadTaken") {
          // Gone with an account erased since the checks (another instance: no tombstone then), or
          // taken by another request meanwhile.
          return yield* tombstones.missingUnlessErased(userId, naming(created.uploadId)(uploads.alreadyUsed()))
        }
        if (created._tag === "QuotaRefused") {
          const refused = new QuotaRefused({
            kind: "sessions",
            limit: config.sessions.dailyLimit,
            retryAfterSeconds: secondsToNextUtcDay(at.getTime())
          })
          return yield* Effect.fail(refused).pipe(
            answeringRefusal((limit) => `Daily limit of ${limit} sessions reached`)
          )
        }
        const row = created.session
        yield* publishQuietly(row.id, { _tag: "Status", status: "queued", phase: null }, stateOf(row))
        // Not queued: the session must not stay `queued` forever, so it fails with the code the client gets.
        // The row's id was just minted: no earlier job nor cancel mark can carry it.
        yield* jobs.enqueue(row.id, { sessionId: row.id, userId }, { fresh: true }).pipe(
          // Never run, so it does not count against today's sessions.
          Effect.tapError(() => Effect.zipRight(notQueued(row.id, userId), quotas.release(quota))),
          Effect.mapError(queueDown)
        )
        yield* Effect.logInfo("Session queued").pipe(
          Effect.annotateLogs({ sessionId: row.id, images: input.uploadIds.length })
        )
        return {
          ...summaryOf(row, input.uploadIds.length),
          costMicros: 0,
          timings: {},
          context: row.context,
          images: input.uploadIds.map((_, position) => ({ position, thumbnail: null })),
          transcript: [],
          suggestions: []
        } satisfies SessionView
      })

    /**
     * The progress: what the listener missed after `afterSeq` (or a snapshot), then live events,
     * until a terminal one. A session already finished whose progress has expired gets its state
     * from the database and the stream ends. SSE, WebSocket and RPC all follow this.
     */
    const follow = (userId: string, id: string, afterSeq: number | undefined) =>
      Effect.gen(function* () {
        const row = yield* repo.stateOf(userId, id)
        if (row === null) return yield* notFound("Session")
        const fallback = stateOf(row)
        const finished = isTerminalStatus(row.status)
        const toItem = (item: ProgressItem<SessionEvent, SessionProgressState>): SessionStreamItem =>
          item._tag === "Snapshot"
            ? { _tag: "Snapshot", seq: item.seq, state: Option.getOrElse(item.state, () => fallback) }
            : { _tag: "Event", seq: item.seq, event: item.event }
        const lastSeq = yield* Ref.make(afterSeq ?? 0)
        const live = feed.subscribe(id, { afterSeq }).pipe(
          Stream.takeUntil((item) => item._tag === "Snapshot" && !item.terminal && item.seq === 0 && finished),
          Stream.tap((item) => Ref.set(lastSeq, item.seq)),
          Stream.map(toItem)
        )
        // The progress may be gone (an in-memory bus after a restart, an expired topic) or never
        // end: the database is checked every SESSION_EVENTS_DB_CHECK_MS; once the session is
        // terminal there and no terminal event came for one more check, its state goes out as a
        // snapshot and the stream ends.
        const check = Duration.millis(config.sessions.eventsDbCheckMs)
        const watchdog = Stream.fromEffect(
          Effect.gen(function* () {
            for (;;) {
              yield* Effect.sleep(check)
              const current = yield* repo.stateOf(userId, id)
              if (current === null) return Option.none<SessionStreamItem>()
              if (isTerminalStatus(current.status)) {
                yield* Effect.sleep(check)
                const snapshot: SessionStreamItem = {
                  _tag: "Snapshot",
                  seq: yield* Ref.get(lastSeq),
                  state: stateOf(current)
                }
                return Option.some(snapshot)
              }
            }
          })
        ).pipe(Stream.filterMap((snapshot) => snapshot))
        // Every follow ends with the session's terminal event, its summary read from the database:
        // after a terminal snapshot (resuming was not possible, or the progress is gone), and after a
        // feed that ended with nothing for the listener (it resumed at the last seq: it had the end,
        // or its seq was from the numbering before Redis restarted empty), which first gets the final
        // state as a snapshot. A feed ended by a deleted session (from another device) fails
        // NotFound: its listener would otherwise wait for an end that never comes.
        const last = yield* Ref.make<SessionStreamItem | undefined>(undefined)
        const closing = Stream.unwrap(
          Effect.gen(function* () {
            const item = yield* Ref.get(last)
            if (item?._tag === "Event" && isTerminalEvent(item.event)) return Stream.empty
            const current = yield* load(userId, id)
            if (!isTerminalStatus(current.status)) return Stream.empty
            const seq = item?.seq ?? (yield* Ref.get(lastSeq))
            const terminal: SessionStreamItem = { _tag: "Event", seq, event: terminalEventOf(current) }
            if (item?._tag === "Snapshot" && isTerminalStatus(item.state.status)) return Stream.make(terminal)
            const snapshot: SessionStreamItem = { _tag: "Snapshot", seq, state: stateOf(current) }
            return Stream.make(snapshot, terminal)
          })
        )
        return Stream.merge(live, watchdog, { haltStrategy: "either" }).pipe(
          Stream.tap((item) => Ref.set(last, item)),
          Stream.concat(closing),
          // Gone with the account erased meanwhile (another device): the follow ends as its start
          // would now be refused, not as a session deleted by itself.
          Stream.catchTag("NotFound", (missing) => Stream.fromEffect(tombstones.missingUnlessErased(userId, missing)))
        )
      })

    /**
     * A reconnect whose `Last-Event-ID` is at or past the end: the session is finished and the
     * listener has every event its progress holds (or the progress is gone). NotFound as `follow`.
     */
    const followEnded = (userId: string, id: string, afterSeq: number) =>
      Effect.gen(function* () {
        const row = yield* repo.stateOf(userId, id)
        if (row === null) return yield* notFound("Session")
        if (!isTerminalStatus(row.status)) return false
        const snapshot = yield* feed.snapshot(id)
        return afterSeq >= snapshot.seq
      })

    const cancel = (userId: string, id: string) =>
      Effect.gen(function* () {
        yield* load(userId, id)
        if (yield* repo.cancel(userId, id, yield* now)) {
          yield* jobs.remove(id).pipe(Effect.mapError(queueDown))
          const row = yield* load(userId, id)
          // After the status: an attempt still normalising cannot record its images any more and
          // deletes them itself; what was recorded before is deleted here.
          yield* removeFullSize(row)
          yield* publishQuietly(id, { _tag: "Cancelled" }, stateOf(row))
          yield* Effect.logInfo("Session cancelled").pipe(Effect.annotateLogs({ sessionId: id }))
          return yield* view(row)
        }
        return yield* view(yield* load(userId, id))
      })

    /**
     * The job, the rows (the session's, which cascade, and its uploads'), then every object its
     * screenshots may be stored at (originals, normalised images and thumbnails, recorded or not),
     * then the progress. Rows first: an attempt still normalising finds no row to record its images
     * on and deletes them itself. Objects a failure or a crash leaves have no row any more: the
     * upload sweep deletes them.
     */
    const remove = (userId: string, id: string) =>
      Effect.gen(function* () {
        const row = yield* load(userId, id)
        yield* jobs.remove(id).pipe(Effect.mapError(queueDown))
        yield* repo.remove(userId, id)
        const keys = row.images.flatMap((image) =>
          [...objectKeysOf(image.upload.key), image.imageKey, image.thumbnailKey].filter((key) => key !== null)
        )
        yield* storage
          .remove([...new Set(keys)])
          .pipe(Effect.catchAll((error) => Effect.logWarning("Session objects not deleted (the sweep will)", error)))
        // After the row: a follower's stream ends on the clear and must find the session gone.
        yield* feed.clear(id).pipe(Effect.catchAll((error) => Effect.logWarning("Session progress not cleared", error)))
      })

    /**
     * Account erasure: every session's queued job, row and progress topic (objects go with uploads).
     * The rows before the topics, as `remove` does: a follower's stream ends on the clear and must
     * find its session gone.
     */
    const eraseUser = (userId: string) =>
      Effect.gen(function* () {
        const ids = yield* repo.idsOf(userId)
        yield* Effect.forEach(ids, (id) => jobs.remove(id), { concurrency: 8, discard: true })
        yield* repo.removeAllOf(userId)
        yield* Effect.forEach(ids, (id) => feed.clear(id), { concurrency: 8, discard: true })
        yield* Effect.logInfo("Sessions erased").pipe(Effect.annotateLogs({ sessions: ids.length }))
      })

    /** The user's fixes to the transcript: only once the pipeline is done with it. */
    const patchTranscript = (userId: string, id: string, input: PatchTranscript) =>
      Effect.gen(function* () {
        const row = yield* load(userId, id)
        if (row.status !== "completed" && row.status !== "failed") {
          return yield* new Conflict({
            message: "The transcript can be fixed once the session is completed or failed",
            details: { status: row.status }
          })
        }
        const known = new Set(row.messages.map((message) => message.position))
        const missing = input.messages.map((fix) => fix.position).filter((position) => !known.has(position))
        if (missing.length > 0) {
          return yield* new BadRequest({
            message: "The transcript has no message at these positions",
            details: { positions: missing }
          })
        }
        if (!(yield* repo.fixMessages(id, input.messages))) {
          // Gone with the account erased meanwhile (another device), or changed meanwhile.
          return yield* tombstones.missingUnlessErased(
            userId,
            new Conflict({ message: "The session changed meanwhile; try again" })
          )
        }
        yield* Effect.logInfo("Session transcript fixed").pipe(
          Effect.annotateLogs({ sessionId: id, messages: input.messages.length })
        )
        return yield* view(yield* load(userId, id))
      })

    /**
     * A new batch from the stored transcript (no OCR), with the session's earlier suggestions
     * never repeated: the events of its writing, ending with the batch's result.
     */
    const regenerate = (userId: string, id: string, input: RegenerateSuggestions) =>
      Effect.gen(function* () {
        const row = yield* load(userId, id)
        if (row.status !== "completed" || row.messages.length === 0) {
          return yield* new Conflict({
            message: "Suggestions can be regenerated once the session is completed",
            details: { status: row.status }
          })
        }
        // Today's regeneration, taken before the batch number and any model call; given back if
        // the batch ends (failed, or the client gone) before a suggestion was saved.
        const reservation = yield* quotas
          .take(userId, "regenerations", config.sessions.regenerationsDailyLimit)
          .pipe(answeringRefusal((limit) => `Daily limit of ${limit} suggestion regenerations reached`))
        const produced = { saved: 0 }
        const settle = quotas.settleOn(reservation, () => produced.saved > 0)
        const batch = yield* Effect.onExit(
          Effect.flatMap(repo.nextBatch(id), (next) =>
            next === null ? tombstones.missingUnlessErased(userId, notFound("Session")) : Effect.succeed(next)
          ),
          settle
        )
        const request: BatchRequest = {
          sessionId: id,
          userId,
          matchId: row.matchId,
          batch,
          tone: input.tone ?? row.tone,
          language: row.language,
          context: row.context,
          instruction: input.instruction ?? null,
          transcript: row.messages.map(toMessage),
          avoid: row.suggestions.map((suggestion) => suggestion.text),
          // A new batch number: nothing was written under it.
          rewrite: false,
          attempt: null
        }
        yield* Effect.logInfo("Session suggestions regenerated").pipe(Effect.annotateLogs({ sessionId: id, batch }))
        const events = suggester.stream(request).pipe(
          // Its session was deleted meanwhile (another device), or went with the account erased
          // meanwhile: the batch ends as a request for either would now be refused.
          Stream.catchTag("AttemptStopped", () =>
            Stream.fromEffect(tombstones.missingUnlessErased(userId, notFound("Session")))
          ),
          Stream.tap((event) =>
            !("_tag" in event)
              ? repo.syncCost(id)
              : Effect.sync(() => {
                  if (event._tag === "Suggestion") produced.saved++
                })
          ),
          (stream) => Stream.ensuringWith(stream, settle)
        )
        return { batch, events }
      })

    const feedback = (
      userId: string,
      sessionId: string,
      suggestionId: string,
      change: (current: { feedback: string | null; dislikeReason: string | null; feedbackAt: Date | null }) => {
        feedback: string | null
        dislikeReason: string | null
        feedbackAt: Date | null
      }
    ) =>
      Effect.gen(function* () {
        const current = yield* repo.findSuggestion(userId, sessionId, suggestionId)
        if (current === null) return yield* notFound("Suggestion")
        const next = change(current)
        if (next.feedback === current.feedback && next.dislikeReason === current.dislikeReason)
          return toSuggestion(current)
        const updated = yield* repo.setFeedback(suggestionId, next)
        // Gone since it was read: its session deleted (another device), or the account erased, meanwhile.
        if (updated === null) return yield* tombstones.missingUnlessErased(userId, notFound("Suggestion"))
        return toSuggestion(updated)
      })

    return {
      create,
      patchTranscript,
      regenerate,
      like: (userId: string, sessionId: string, suggestionId: string) =>
        Effect.flatMap(now, (at) =>
          feedback(userId, sessionId, suggestionId, () => ({ feedback: "liked", dislikeReason: null, feedbackAt: at }))
        ),
      unlike: (userId: string, sessionId: string, suggestionId: string) =>
        feedback(userId, sessionId, suggestionId, (current) =>
          current.feedback === "liked" ? { feedback: null, dislikeReason: null, feedbackAt: null } : current
        ),
      dislike: (userId: string, sessionId: string, suggestionId: string, reason: string | undefined) =>
        Effect.flatMap(now, (at) =>
          feedback(userId, sessionId, suggestionId, () => ({
            feedback: "disliked",
            dislikeReason: reason === undefined || reason === "" ? null : reason,
            feedbackAt: at
          }))
        ),
      /** Clears a dislike (and its reason); a like, or no feedback, stays as it is (idempotent). */
      undislike: (userId: string, sessionId: string, suggestionId: string) =>
        feedback(userId, sessionId, suggestionId, (current) =>
          current.feedback === "disliked" ? { feedback: null, dislikeReason: null, feedbackAt: null } : current
        ),
      get: (userId: string, id: string) => Effect.flatMap(load(userId, id), view),
      /** With `matchId`, that match's sessions only; scoped by `userId`, so another user's match lists nothing. */
      list: (userId: string, matchId: string | undefined, limit: number, cursor: string | undefined) =>
        Effect.map(repo.list(userId, matchId, limit, cursor), (rows) =>
          toPage(rows, limit, (row) => summaryOf(row, row.imageCount))
        ),
      follow,
      followEnded,
      cancel,
      remove,
      eraseUser
    } as const
  }),
  dependencies: [SessionsRepo.Default, SessionSuggester.Default, Quotas.Default, Tombstones.Default]
}) {}

/** Registers the sessions' erasure step: queued jobs and progress state. */
export const SessionsErasureLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const erasure = yield* Erasure
    const sessions = yield* SessionsService
    yield* erasure.register({ name: "sessions", erase: (user) => sessions.eraseUser(user.id) })
  })
)
