/**
 * Prisma access for sessions. Reads for the API are scoped to their owner; the worker reads by
 * id. Every write of the pipeline is idempotent (unique keys, conditional updates), so a retried
 * job never duplicates a row, and a cancelled or deleted session is never brought back.
 */
import { Effect, Option, Schema } from "effect"
import { Db, type DbError, queryWith } from "../../core/db/db.ts"
import { newId } from "../../core/db/ids.ts"
import { Prisma, type Session, UploadPurpose, UploadStatus } from "../../core/db/generated/client.ts"
import { cursorKey } from "../../core/pagination.ts"
import { TONES } from "../../domain/tones.ts"
import type { ProcessedFields } from "../uploads/uploads.repo.ts"

export type { Session }

/** Where a scan of untouched running sessions stands: the last row's update time and id. */
export interface StaleKey {
  readonly id: string
  readonly updatedAt: Date
}

/** A row of the list: the summary's columns and the image count. */
export interface SummaryRow {
  readonly id: string
  readonly matchId: string | null
  readonly status: Session["status"]
  readonly phase: string | null
  readonly errorCode: string | null
  readonly tone: string
  readonly language: string
  readonly createdAt: Date
  readonly completedAt: Date | null
  readonly imageCount: number
}

/** Statuses in which the pipeline may still write. */
const RUNNING: Array<"queued" | "processing"> = ["queued", "processing"]

const detail = {
  images: { orderBy: { position: "asc" as const }, include: { upload: { select: { key: true } } } },
  messages: { orderBy: { position: "asc" as const } },
  suggestions: { orderBy: [{ batch: "asc" as const }, { position: "asc" as const }] }
}

export interface MessageRow {
  readonly sender: string
  readonly text: string
  readonly time: string | null
  readonly confidence: number
}

/** The images and transcript of `findForJob`, as its statement writes them in JSON. */
const JobParts = Schema.Struct({
  images: Schema.Array(
    Schema.Struct({
      id: Schema.String,
      uploadId: Schema.String,
      contentHash: Schema.NullOr(Schema.String),
      imageKey: Schema.NullOr(Schema.String),
      thumbnailKey: Schema.NullOr(Schema.String),
      upload: Schema.Struct({
        id: Schema.String,
        userId: Schema.String,
        key: Schema.String,
        purpose: Schema.Enums(UploadPurpose),
        contentType: Schema.String,
        contentLength: Schema.Number,
        status: Schema.Enums(UploadStatus),
        rejectionCode: Schema.NullOr(Schema.String),
        rejectionNote: Schema.NullOr(Schema.String),
        expiresAt: Schema.DateFromNumber,
        imageKey: Schema.NullOr(Schema.String),
        thumbnailKey: Schema.NullOr(Schema.String),
        contentHash: Schema.NullOr(Schema.String),
        width: Schema.NullOr(Schema.Number),
        height: Schema.NullOr(Schema.Number)
      })
    })
  ),
  messages: Schema.Array(
    Schema.Struct({
      position: Schema.Number,
      sender: Schema.String,
      text: Schema.String,
      time: Schema.NullOr(Schema.String),
      confidence: Schema.Number
    })
  )
})

/** A row the database wrote is not what this code expects (a defect: schema and code disagree). */
const decodeJobParts = (parts: unknown) => Effect.orDie(Schema.decodeUnknown(JobParts)(parts))

/** `findForJob`'s row before its JSON columns are decoded. */
interface JobSessionRow extends Pick<
  Session,
  "id" | "userId" | "matchId" | "status" | "tone" | "language" | "context" | "createdAt" | "startedAt"
> {
  readonly erased: boolean
  readonly images: unknown
  readonly messages: unknown
}

/** A suggestion with the user's feedback, as the prompt reads it. */
interface FeedbackRow {
  readonly feedback: string
  readonly text: string
  readonly dislikeReason: string | null
}

/** What creating a session needs: the values of its row, what it takes, and today's quota. */
export interface NewSession {
  readonly userId: string
  readonly matchId: string | null
  /** Null: the user's default tone (or `playful`). */
  readonly tone: string | null
  /** Null: the user's preferred language (or `en`). */
  readonly language: string | null
  readonly context: string | null
  readonly uploadIds: ReadonlyArray<string>
  /** Today (UTC, `YYYY-MM-DD`) and its limit of sessions. */
  readonly day: string
  readonly limit: number
  readonly now: Date
}

/** The columns of a new session that its creation answers. */
export type CreatedSession = Pick<
  Session,
  "id" | "matchId" | "status" | "phase" | "errorCode" | "tone" | "language" | "context" | "createdAt" | "completedAt"
>

/**
 * What `create` did: the session written (everything taken), or nothing taken because an upload
 * was taken by another request meanwhile (the first, in the given order) or today's limit is reached.
 */
export type Created =
  | { readonly _tag: "Created"; readonly session: CreatedSession }
  | { readonly _tag: "UploadTaken"; readonly uploadId: string }
  | { readonly _tag: "QuotaRefused" }

/** The statement's row: the uploads it could not lock, whether the unit was taken, the row's columns (null when not written). */
interface CreatedRow {
  readonly missing: Array<string>
  readonly quotaTaken: boolean
  readonly id: string | null
  readonly matchId: string | null
  readonly status: Session["status"] | null
  readonly phase: string | null
  readonly errorCode: string | null
  readonly tone: string | null
  readonly language: string | null
  readonly context: string | null
  readonly createdAt: Date | null
  readonly completedAt: Date | null
}

/** A fix names a position the transcript does not have: the transaction is rolled back. */
class MissingMessage extends Error {}

export class SessionsRepo extends Effect.Service<SessionsRepo>()("SessionsRepo", {
  effect: Effect.gen(function* () {
    const db = yield* Db
    return {
      /**
       * The new session and its images in ONE statement, with what it takes: today's unit of
       * `sessions` (within `limit`) and every upload (verified → used, locked first so that a
       * concurrent taker waits and is seen). Nothing is taken unless everything is: the row is
       * written only when every upload could be locked and the unit taken. Tone and language
       * default to the user's own (read in the same statement). The row, or why not.
       */
      create: (input: NewSession): Effect.Effect<Created, DbError> =>
        Effect.gen(function* () {
          const id = newId()
          const imageIds = input.uploadIds.map(() => newId())
          const rows = yield* db.sql<CreatedRow>(
            "sessions.create",
            Prisma.sql`
              WITH locked AS (
                SELECT id FROM uploads
                WHERE id = ANY(${input.uploadIds}::text[]) AND user_id = ${input.userId} AND status = 'verified'
                ORDER BY id FOR UPDATE
              ), quota AS (
                INSERT INTO usage_counters (user_id, kind, day, used)
                SELECT ${input.userId}, 'sessions', ${input.day}::date, 1
                WHERE 1 <= ${input.limit}::int AND (SELECT count(*) FROM locked) = ${input.uploadIds.length}::int
                ON CONFLICT (user_id, kind, day) DO UPDATE SET used = usage_counters.used + EXCLUDED.used
                WHERE usage_counters.used + EXCLUDED.used <= ${input.limit}::int
                RETURNING used
              ), taken AS (
                UPDATE uploads SET status = 'used', used_at = ${input.now}
                WHERE id IN (SELECT id FROM locked) AND EXISTS (SELECT 1 FROM quota)
                RETURNING id
              ), created AS (
                INSERT INTO sessions (id, user_id, match_id, tone, language, context, created_at, updated_at)
                SELECT ${id}, u.id, ${input.matchId},
                       COALESCE(${input.tone}, CASE WHEN u.default_tone = ANY(${TONES}::text[]) THEN u.default_tone ELSE 'playful' END),
                       COALESCE(${input.language}, u.preferred_language, 'en'), ${input.context},
                       ${input.now}::timestamp, ${input.now}::timestamp
                FROM users u
                WHERE u.id = ${input.userId} AND (SELECT count(*) FROM taken) = ${input.uploadIds.length}::int
                RETURNING id, match_id, status::text AS status, phase, error_code, tone, language, context, created_at, completed_at
              ), images AS (
                INSERT INTO session_images (id, session_id, upload_id, position, created_at)
                SELECT image.id, created.id, image.upload_id, (image.ordinality - 1)::int, ${input.now}::timestamp
                FROM created, unnest(${imageIds}::text[], ${input.uploadIds}::text[]) WITH ORDINALITY AS image(id, upload_id, ordinality)
              )
              SELECT ARRAY(SELECT given.id FROM unnest(${input.uploadIds}::text[]) WITH ORDINALITY AS given(id, n)
                            WHERE given.id NOT IN (SELECT id FROM locked) ORDER BY given.n) AS missing,
                     EXISTS (SELECT 1 FROM quota) AS "quotaTaken",
                     created.id, created.match_id AS "matchId", created.status, created.phase, created.error_code AS "errorCode",
                     created.tone, created.language, created.context, created.created_at AS "createdAt",
                     created.completed_at AS "completedAt"
              FROM (SELECT 1) AS one LEFT JOIN created ON true`
          )
          const row = rows[0]
          if (row === undefined) return yield* Effect.dieMessage("sessions.create answered no row")
          const taken = row.missing[0]
          if (taken !== undefined) return { _tag: "UploadTaken", uploadId: taken } satisfies Created
          if (!row.quotaTaken) return { _tag: "QuotaRefused" } satisfies Created
          // Every upload locked and the unit taken, the row is written (its user exists: the uploads cascade with it).
          if (row.id === null || row.status === null || row.createdAt === null)
            return yield* Effect.dieMessage("sessions.create took its uploads and unit but wrote no row")
          const session: CreatedSession = {
            id: row.id,
            matchId: row.matchId,
            status: row.status,
            phase: row.phase,
            errorCode: row.errorCode,
            tone: row.tone ?? "playful",
            language: row.language ?? "en",
            context: row.context,
            createdAt: row.createdAt,
            completedAt: row.completedAt
          }
          return { _tag: "Created", session } satisfies Created
        }),
      find: (userId: string, id: string) =>
        db.query("sessions.find", (c) => c.session.findFirst({ where: { id, userId }, include: detail })),
      /** Status, phase and error code of one of the user's sessions (what following it needs), or null. */
      stateOf: (userId: string, id: string) =>
        db.query("sessions.stateOf", (c) =>
          c.session.findFirst({ where: { id, userId }, select: { status: true, phase: true, errorCode: true } })
        ),
      /**
       * The worker's read, in one statement: by id only (the job carries the owner, checked by the
       * caller), with whether the owner's erasure has started, the images with their uploads' rows
       * (what processing reads), and any transcript saved by an earlier attempt (not the
       * suggestions: batch 0 is rewritten). Null when the session is gone.
       */
      findForJob: (id: string) =>
        Effect.flatMap(
          db.sql<JobSessionRow>(
            "sessions.findForJob",
            Prisma.sql`
              SELECT s.id, s.user_id AS "userId", s.match_id AS "matchId", s.status::text AS status, s.tone,
                     s.language, s.context, s.created_at AS "createdAt", s.started_at AS "startedAt",
                     EXISTS (SELECT 1 FROM erased_accounts e WHERE e.user_id = s.user_id) AS erased,
                     COALESCE((
                       SELECT json_agg(json_build_object(
                         'id', i.id, 'uploadId', i.upload_id, 'contentHash', i.content_hash, 'imageKey', i.image_key,
                         'thumbnailKey', i.thumbnail_key,
                         'upload', json_build_object(
                           'id', u.id, 'userId', u.user_id, 'key', u.key, 'purpose', u.purpose,
                           'contentType', u.content_type, 'contentLength', u.content_length, 'status', u.status,
                           'rejectionCode', u.rejection_code, 'rejectionNote', u.rejection_note,
                           'expiresAt', (extract(epoch FROM u.expires_at) * 1000)::bigint, 'imageKey', u.image_key,
                           'thumbnailKey', u.thumbnail_key, 'contentHash', u.content_hash, 'width', u.width,
                           'height', u.height)
                       ) ORDER BY i.position)
                       FROM session_images i JOIN uploads u ON u.id = i.upload_id WHERE i.session_id = s.id
                     ), '[]'::json) AS images,
                     COALESCE((
                       SELECT json_agg(json_build_object(
                         'position', m.position, 'sender', m.sender, 'text', m.text, 'time', m.time,
                         'confidence', m.confidence
                       ) ORDER BY m.position)
                       FROM transcript_messages m WHERE m.session_id = s.id
                     ), '[]'::json) AS messages
              FROM sessions s WHERE s.id = ${id}`
          ),
          (rows) => {
            const row = rows[0]
            if (row === undefined) return Effect.succeed(null)
            return Effect.map(decodeJobParts({ images: row.images, messages: row.messages }), (parts) => ({
              ...row,
              ...parts
            }))
          }
        ),
      /**
       * A page of summaries, newest first. The app's most frequent read, so one SQL statement
       * written out and sent on the pool: Prisma's client-side planning of the same `findMany` (with
       * `_count`) cost more CPU than the rest of the request, and its `$queryRaw` still ~6% of it.
       */
      list: (userId: string, matchId: string | undefined, limit: number, cursor: string | undefined) =>
        Effect.flatMap(cursorKey(cursor), (after) =>
          db.sql<SummaryRow>(
            "sessions.list",
            Prisma.sql`
              SELECT s.id, s.match_id AS "matchId", s.status::text AS status, s.phase, s.error_code AS "errorCode",
                     s.tone, s.language, s.created_at AS "createdAt", s.completed_at AS "completedAt",
                     (SELECT count(*)::int FROM session_images i WHERE i.session_id = s.id) AS "imageCount"
              FROM sessions s
              WHERE s.user_id = ${userId}
                ${matchId === undefined ? Prisma.empty : Prisma.sql`AND s.match_id = ${matchId}`}
                ${after === undefined ? Prisma.empty : Prisma.sql`AND (s.created_at < ${after.createdAt} OR (s.created_at = ${after.createdAt} AND s.id < ${after.id}))`}
              ORDER BY s.created_at DESC, s.id DESC
              LIMIT ${limit + 1}`
          )
        ),
      /** Updates a session still queued or processing; false when it was cancelled, finished or deleted. */
      advance: (id: string, data: Prisma.SessionUncheckedUpdateManyInput) =>
        db
          .query("sessions.advance", (c) => c.session.updateMany({ where: { id, status: { in: RUNNING } }, data }))
          .pipe(Effect.map(({ count }) => count > 0)),
      /**
       * `advance` into `phase` of processing (the pipeline's hot update, a few per session, sent
       * without Prisma's client): false when the session was cancelled, finished or deleted.
       */
      enterPhase: (id: string, phase: string, startedAt: Date, timings: Record<string, number>, at: Date) =>
        db
          .sql<{ id: string }>(
            "sessions.enterPhase",
            Prisma.sql`
              UPDATE sessions SET status = 'processing', phase = ${phase}, started_at = ${startedAt},
                     timings = ${JSON.stringify(timings)}::jsonb, updated_at = ${at}
              WHERE id = ${id} AND status IN ('queued', 'processing')
              RETURNING id`
          )
          .pipe(Effect.map((rows) => rows.length > 0)),
      cancel: (userId: string, id: string, at: Date) =>
        db
          .query("sessions.cancel", (c) =>
            c.session.updateMany({
              where: { id, userId, status: { in: RUNNING } },
              data: { status: "cancelled", phase: null, completedAt: at }
            })
          )
          .pipe(Effect.map(({ count }) => count > 0)),
      /**
       * The session (images, transcript and suggestions cascade) and the cached reads of its
       * screenshots: a transcript is gone with its session, and the same screenshot is read again.
       * The row is locked first, so a read being cached at this moment (`cacheOcr` holds a key
       * share on it) either lands before and is deleted here, or finds the session gone.
       */
      remove: (userId: string, id: string) =>
        db.transaction("sessions.remove", (tx) =>
          Effect.gen(function* () {
            const locked = yield* queryWith(
              tx,
              "sessions.remove.lock",
              (c) => c.$queryRaw<Array<{ id: string }>>`
                SELECT id FROM sessions WHERE id = ${id} AND user_id = ${userId} FOR UPDATE`
            )
            if (locked.length === 0) return false
            yield* queryWith(
              tx,
              "sessions.remove.cachedReads",
              (c) => c.$executeRaw`
                DELETE FROM ocr_results WHERE user_id = ${userId} AND content_hash IN (
                  SELECT content_hash FROM session_images WHERE session_id = ${id} AND content_hash IS NOT NULL
                )`
            )
            yield* queryWith(tx, "sessions.remove.row", (c) => c.session.deleteMany({ where: { id, userId } }))
            return true
          })
        ),
      /** Every session of the user (account erasure; images, transcript and suggestions cascade). */
      removeAllOf: (userId: string) =>
        db.query("sessions.removeAllOf", (c) => c.session.deleteMany({ where: { userId } })).pipe(Effect.asVoid),
      idsOf: (userId: string) =>
        db
          .query("sessions.idsOf", (c) => c.session.findMany({ where: { userId }, select: { id: true } }))
          .pipe(Effect.map((rows) => rows.map((row) => row.id))),
      /**
       * The normalised image of a session's screenshot, recorded on its upload (unless recorded
       * there already: its first record stands) and on the session image, in one statement.
       */
      setImage: (imageId: string, uploadId: string, fields: ProcessedFields) =>
        db.sql(
          "sessions.setImage",
          Prisma.sql`
            WITH upload AS (
              UPDATE uploads SET image_key = ${fields.imageKey}, thumbnail_key = ${fields.thumbnailKey},
                     content_hash = ${fields.contentHash}, width = ${fields.width}, height = ${fields.height},
                     processed_at = ${fields.processedAt}, updated_at = ${fields.processedAt}
              WHERE id = ${uploadId} AND processed_at IS NULL
            )
            UPDATE session_images SET content_hash = ${fields.contentHash}, image_key = ${fields.imageKey},
                   thumbnail_key = ${fields.thumbnailKey}
            WHERE id = ${imageId}`
        ),
      cachedOcr: (userId: string, contentHash: string) =>
        db.query("sessions.cachedOcr", (c) =>
          c.ocrResult.findUnique({ where: { userId_contentHash: { userId, contentHash } } })
        ),
      /**
       * Kept only while the session exists (its row key-share locked until the insert commits):
       * a read that ends after the session was deleted is not cached (see `remove`).
       */
      cacheOcr: (
        sessionId: string,
        userId: string,
        contentHash: string,
        transcript: Prisma.InputJsonValue,
        provider: string
      ) =>
        db.sql(
          "sessions.cacheOcr",
          Prisma.sql`
            INSERT INTO ocr_results (user_id, content_hash, transcript, provider)
            SELECT ${userId}, ${contentHash}, ${JSON.stringify(transcript)}::jsonb, ${provider}
            WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ${sessionId} FOR KEY SHARE)
            ON CONFLICT (user_id, content_hash) DO NOTHING`
        ),
      /** The merged transcript, once: a retry finds the rows already there. */
      saveTranscript: (sessionId: string, messages: ReadonlyArray<MessageRow>) =>
        db.query("sessions.saveTranscript", (c) =>
          c.transcriptMessage.createMany({
            data: messages.map((message, position) => ({ sessionId, position, ...message })),
            skipDuplicates: true
          })
        ),
      messages: (sessionId: string) =>
        db.query("sessions.messages", (c) =>
          c.transcriptMessage.findMany({ where: { sessionId }, orderBy: { position: "asc" } })
        ),
      /** A suggestion at (batch, position): a retry replaces what the failed attempt wrote. */
      saveSuggestion: (data: Prisma.SuggestionUncheckedCreateInput) =>
        db.query("sessions.saveSuggestion", (c) =>
          c.suggestion.upsert({
            where: {
              sessionId_batch_position: { sessionId: data.sessionId, batch: data.batch, position: data.position }
            },
            create: data,
            update: { text: data.text, tone: data.tone, provider: data.provider, model: data.model, feedback: null }
          })
        ),
      /** Suggestions of `batch` past `count` (left by an earlier attempt that wrote more). */
      trimSuggestions: (sessionId: string, batch: number, count: number) =>
        db.query("sessions.trimSuggestions", (c) =>
          c.suggestion.deleteMany({ where: { sessionId, batch, position: { gte: count } } })
        ),
      /**
       * The user's fixes, in one transaction, only while the session is completed or failed:
       * false (nothing written) when a message is missing or the session moved meanwhile.
       */
      fixMessages: (
        sessionId: string,
        fixes: ReadonlyArray<{ readonly position: number; readonly sender?: string; readonly text?: string }>
      ) =>
        db
          .query("sessions.fixMessages", (c) =>
            c.$transaction(async (tx) => {
              const locked = await tx.session.updateMany({
                where: { id: sessionId, status: { in: ["completed", "failed"] } },
                data: { updatedAt: new Date() }
              })
              if (locked.count === 0) return false
              for (const fix of fixes) {
                const updated = await tx.transcriptMessage.updateMany({
                  where: { sessionId, position: fix.position },
                  data: {
                    ...(fix.sender === undefined ? {} : { sender: fix.sender }),
                    ...(fix.text === undefined ? {} : { text: fix.text }),
                    confidence: 1
                  }
                })
                if (updated.count === 0) throw new MissingMessage()
              }
              return true
            })
          )
          .pipe(
            Effect.catchIf(
              (error) => error.cause instanceof MissingMessage,
              () => Effect.succeed(false)
            )
          ),
      /** A suggestion of one of the user's sessions, or null. */
      findSuggestion: (userId: string, sessionId: string, suggestionId: string) =>
        db.query("sessions.findSuggestion", (c) =>
          c.suggestion.findFirst({ where: { id: suggestionId, sessionId, session: { userId } } })
        ),
      setFeedback: (
        suggestionId: string,
        data: {
          readonly feedback: string | null
          readonly dislikeReason: string | null
          readonly feedbackAt: Date | null
        }
      ) => db.query("sessions.setFeedback", (c) => c.suggestion.update({ where: { id: suggestionId }, data })),
      /**
       * The session's cost as the ledger holds it: every AI call made for it (OCR, suggestions,
       * regenerations, failed attempts that were billed), in one statement.
       */
      syncCost: (id: string) =>
        db
          .query(
            "sessions.syncCost",
            (c) =>
              c.$queryRaw<
                Array<{ cost_micros: number }>
              >`UPDATE sessions SET cost_micros = (SELECT COALESCE(SUM(cost_micros), 0) FROM ai_calls WHERE session_id = ${id}) WHERE id = ${id} RETURNING cost_micros`
          )
          .pipe(Effect.map((rows) => rows[0]?.cost_micros ?? 0)),
      /** The next batch number of a session, taken atomically (two regenerations at once get one each). */
      nextBatch: (sessionId: string) =>
        db
          .query("sessions.nextBatch", (c) =>
            c.session.update({
              where: { id: sessionId },
              data: { lastBatch: { increment: 1 } },
              select: { lastBatch: true }
            })
          )
          .pipe(Effect.map((row) => row.lastBatch)),
      /**
       * Earlier sessions of the user with this match (newest first, at most `sessions`), each with
       * its last `messages` transcript messages (in order): context for the suggestions.
       */
      earlierWithMatch: (
        userId: string,
        matchId: string,
        excludeSessionId: string,
        bounds: { readonly sessions: number; readonly messages: number }
      ) =>
        db
          .query("sessions.earlierWithMatch", (c) =>
            c.session.findMany({
              where: { userId, matchId, id: { not: excludeSessionId }, messages: { some: {} } },
              orderBy: [{ createdAt: "desc" }, { id: "desc" }],
              take: bounds.sessions,
              select: {
                createdAt: true,
                messages: { orderBy: { position: "desc" }, take: bounds.messages, select: { sender: true, text: true } }
              }
            })
          )
          .pipe(
            Effect.map((rows) =>
              rows.map((row) => ({ createdAt: row.createdAt, messages: [...row.messages].reverse() }))
            )
          ),
      /** When the session's full-size screenshots are to be deleted (SESSION_SCREENSHOT_RETENTION_SECONDS > 0). */
      setOriginalsExpiry: (id: string, at: Date | null) =>
        db.query("sessions.setOriginalsExpiry", (c) =>
          c.session.updateMany({ where: { id }, data: { originalsExpireAt: at } })
        ),
      /** Sessions whose full-size screenshots are due, oldest first, with the originals' and normalised images' keys. */
      /**
       * Sessions still queued or processing and untouched since `before`, oldest first, after the
       * keyset `after` (index `sessions_status_updated_at_idx`).
       */
      untouchedRunning: (before: Date, after: StaleKey | undefined, limit: number) =>
        db.sql<StaleKey & { readonly userId: string; readonly createdAt: Date }>(
          "sessions.untouchedRunning",
          Prisma.sql`
            SELECT id, user_id AS "userId", updated_at AS "updatedAt", created_at AS "createdAt" FROM sessions
            WHERE status IN ('queued', 'processing') AND updated_at < ${before}
              ${after === undefined ? Prisma.empty : Prisma.sql`AND (updated_at, id) > (${after.updatedAt}, ${after.id})`}
            ORDER BY updated_at, id
            LIMIT ${limit}`
        ),
      originalsDue: (now: Date, limit: number) =>
        db.query("sessions.originalsDue", (c) =>
          c.session.findMany({
            where: { originalsExpireAt: { lte: now } },
            orderBy: { originalsExpireAt: "asc" },
            take: limit,
            select: { id: true, images: { select: { imageKey: true, upload: { select: { key: true } } } } }
          })
        ),
      /** The user's last liked and disliked suggestions (five each), to shape the prompt: one statement. */
      feedbackOf: (userId: string) =>
        Effect.map(
          db.sql<FeedbackRow>(
            "sessions.feedbackOf",
            Prisma.sql`
              (SELECT s.feedback, s.text, s.dislike_reason AS "dislikeReason" FROM suggestions s
               JOIN sessions ON sessions.id = s.session_id
               WHERE sessions.user_id = ${userId} AND s.feedback = 'liked' ORDER BY s.feedback_at DESC LIMIT 5)
              UNION ALL
              (SELECT s.feedback, s.text, s.dislike_reason AS "dislikeReason" FROM suggestions s
               JOIN sessions ON sessions.id = s.session_id
               WHERE sessions.user_id = ${userId} AND s.feedback = 'disliked' ORDER BY s.feedback_at DESC LIMIT 5)`
          ),
          (rows) => ({
            liked: rows.filter((row) => row.feedback === "liked"),
            disliked: rows.filter((row) => row.feedback === "disliked")
          })
        ),
      /**
       * The session completed (if still running) with its cost as the ledger holds it, in one
       * statement: the cost, or none when it was cancelled, finished or deleted meanwhile.
       */
      complete: (id: string, at: Date, timings: Record<string, number>) =>
        db
          .sql<{ cost_micros: number }>(
            "sessions.complete",
            Prisma.sql`
              UPDATE sessions SET status = 'completed', phase = NULL, completed_at = ${at},
                     timings = ${JSON.stringify(timings)}::jsonb, updated_at = ${at},
                     cost_micros = (SELECT COALESCE(SUM(cost_micros), 0) FROM ai_calls WHERE session_id = ${id})
              WHERE id = ${id} AND status IN ('queued', 'processing')
              RETURNING cost_micros`
          )
          .pipe(Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), (row) => row.cost_micros)))
    } as const
  })
}) {}

export type SessionDetail = NonNullable<Effect.Effect.Success<ReturnType<SessionsRepo["find"]>>>
