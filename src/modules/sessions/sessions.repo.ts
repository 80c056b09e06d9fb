/**
 * Prisma access for sessions. Reads for the API are scoped to their owner; the worker reads by
 * id. Every write of the pipeline is idempotent (unique keys, conditional updates), so a retried
 * job never duplicates a row, and a cancelled or deleted session is never brought back.
 *
 * Every write of the pipeline is also fenced by its attempt: `findForJob` records the attempt's
 * token on the session (`attempt_token`) as it takes the job up, and each later write is
 * conditioned on that token in the same statement. An attempt whose job another attempt took over
 * (its queue lock lost: a paused or partitioned worker) writes nothing more and fails with
 * `AttemptStopped` ("superseded"), whatever it was doing.
 */
import { Data, Effect, Schema } from "effect"
import { Db, type DbError, isRecordNotFound, queryWith } from "../../core/db/db.ts"
import { newId } from "../../core/db/ids.ts"
import { Prisma, type Session, type Suggestion, UploadPurpose, UploadStatus } from "../../core/db/generated/client.ts"
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

/** A session's daily unit of `sessions`: its owner, and the UTC day (`YYYY-MM-DD`) it was taken on. */
export interface SessionUnit {
  readonly userId: string
  readonly day: string
}

/**
 * A job attempt may no longer write its session: it `ended` (cancelled, finished or deleted
 * meanwhile) or another attempt of its job took it over (`superseded`). The attempt stops quietly.
 */
export class AttemptStopped extends Data.TaggedError("AttemptStopped")<{
  readonly reason: "ended" | "superseded"
}> {}

/** Whether an attempt may write its session, as a fenced statement found it. */
type Ownership = "owned" | "ended" | "superseded"

/**
 * The CTE `owner`: the session's row locked for share (a takeover's claim waits for the write, or
 * the write sees the claim) and whether `attempt` may write it. A null attempt (a regeneration, in
 * the api) may write while the session exists.
 */
const ownerOf = (sessionId: string, attempt: string | null) =>
  attempt === null
    ? Prisma.sql`owner AS (SELECT 'owned'::text AS ownership FROM sessions WHERE id = ${sessionId} FOR SHARE)`
    : Prisma.sql`owner AS (
        SELECT CASE WHEN attempt_token IS DISTINCT FROM ${attempt}::text THEN 'superseded'
                    WHEN status IN ('queued', 'processing') THEN 'owned' ELSE 'ended' END AS ownership
        FROM sessions WHERE id = ${sessionId} FOR SHARE
      )`

/** A fenced write's verdict: nothing, or why the attempt must stop. */
const settle = (ownership: Ownership | null | undefined): Effect.Effect<void, AttemptStopped> =>
  ownership === "owned"
    ? Effect.void
    : new AttemptStopped({ reason: ownership === "superseded" ? "superseded" : "ended" })

/** A suggestion to save at (batch, position). */
export interface NewSuggestion {
  readonly sessionId: string
  readonly batch: number
  readonly position: number
  readonly text: string
  readonly tone: string
  readonly promptVersion: string
  readonly provider: string
  readonly model: string
}

/** A saved suggestion's columns, as the views read them. */
export interface SavedSuggestion {
  readonly id: string
  readonly batch: number
  readonly position: number
  readonly text: string
  readonly tone: string
  readonly feedback: string | null
  readonly dislikeReason: string | null
}

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
  /** Whether this read took the session for its attempt (false: it was not queued or processing). */
  readonly claimed: boolean
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

    /**
     * A CTE giving back the session's daily unit (`unit`: its owner and the UTC day it was taken on)
     * when, and only when, the statement's `updated` CTE changed the session: a client that sees the
     * session failed sees its unit back too, and a crash cannot leave one without the other.
     */
    const releasingUnit = (unit: SessionUnit | undefined) =>
      unit === undefined
        ? Prisma.empty
        : Prisma.sql`, released AS (
              UPDATE usage_counters SET used = GREATEST(used - 1, 0)
              WHERE EXISTS (SELECT 1 FROM updated) AND user_id = ${unit.userId} AND kind = 'sessions'
                AND day = ${unit.day}::date
            )`

    /**
     * An update of the session by its owning attempt, in one statement: `set` applied while the
     * session runs and `attempt` owns it; the `returning` columns, or `AttemptStopped`.
     */
    const updateOwned = <Row extends object>(
      operation: string,
      id: string,
      attempt: string,
      set: Prisma.Sql,
      returning: Prisma.Sql,
      also: Prisma.Sql = Prisma.empty
    ): Effect.Effect<Row, DbError | AttemptStopped> =>
      Effect.flatMap(
        db.sql<Row & { readonly updated: boolean; readonly superseded: boolean | null }>(
          operation,
          Prisma.sql`
            WITH updated AS (
              UPDATE sessions SET ${set}
              WHERE id = ${id} AND status IN ('queued', 'processing') AND attempt_token = ${attempt}
              RETURNING ${returning}
            )${also}
            SELECT updated.*, EXISTS (SELECT 1 FROM updated) AS updated,
                   (SELECT attempt_token IS DISTINCT FROM ${attempt}::text FROM sessions WHERE id = ${id}) AS superseded
            FROM (SELECT 1) AS one LEFT JOIN updated ON true`
        ),
        (rows) => {
          const row = rows[0]
          if (row?.updated === true) return Effect.succeed(row)
          return new AttemptStopped({ reason: row?.superseded === true ? "superseded" : "ended" })
        }
      )

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
       * suggestions: batch 0 is rewritten). Null when the session is gone. The same statement
       * takes the session for `attempt` while it is queued or processing (`claimed`): from then on
       * only that attempt's writes land, and any earlier attempt still running is superseded.
       */
      findForJob: (id: string, attempt: string) =>
        Effect.flatMap(
          db.sql<JobSessionRow>(
            "sessions.findForJob",
            Prisma.sql`
              WITH claimed AS (
                UPDATE sessions SET attempt_token = ${attempt}
                WHERE id = ${id} AND status IN ('queued', 'processing')
                RETURNING id
              )
              SELECT EXISTS (SELECT 1 FROM claimed) AS claimed, s.id, s.user_id AS "userId", s.match_id AS "matchId", s.status::text AS status, s.tone,
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
       * The session into `phase` of processing by its owning attempt (the pipeline's hot update, a
       * few per session, sent without Prisma's client); `AttemptStopped` when it was cancelled,
       * finished or deleted, or another attempt took it over.
       */
      enterPhase: (
        id: string,
        attempt: string,
        phase: string,
        startedAt: Date,
        timings: Record<string, number>,
        at: Date
      ) =>
        Effect.asVoid(
          updateOwned(
            "sessions.enterPhase",
            id,
            attempt,
            Prisma.sql`status = 'processing', phase = ${phase}, started_at = ${startedAt},
                       timings = ${JSON.stringify(timings)}::jsonb, updated_at = ${at}`,
            Prisma.sql`id`
          )
        ),
      /**
       * The session failed with `errorCode` by its owning attempt, with its cost as the ledger holds
       * it (what the attempts consumed before failing), in one statement; `AttemptStopped` when it
       * had ended or another attempt took it over.
       */
      failOwned: (id: string, attempt: string, errorCode: string, at: Date, unit?: SessionUnit) =>
        Effect.asVoid(
          updateOwned(
            "sessions.failOwned",
            id,
            attempt,
            Prisma.sql`status = 'failed', phase = NULL, error_code = ${errorCode}, completed_at = ${at}, updated_at = ${at},
                       cost_micros = (SELECT COALESCE(SUM(cost_micros), 0) FROM ai_calls WHERE session_id = ${id})`,
            Prisma.sql`id`,
            releasingUnit(unit)
          )
        ),
      /**
       * The session failed with `errorCode` while it runs, whichever attempt owns it (the
       * reconciler's, for a session whose job the queue ended), its unit given back in the same
       * statement; false when it had ended.
       */
      failRunning: (id: string, errorCode: string, at: Date, unit: SessionUnit) =>
        db
          .sql<{ readonly updated: boolean }>(
            "sessions.failRunning",
            Prisma.sql`
              WITH updated AS (
                UPDATE sessions SET status = 'failed', phase = NULL, error_code = ${errorCode},
                                    completed_at = ${at}, updated_at = ${at}
                WHERE id = ${id} AND status IN ('queued', 'processing')
                RETURNING id
              )${releasingUnit(unit)}
              SELECT EXISTS (SELECT 1 FROM updated) AS updated`
          )
          .pipe(Effect.map((rows) => rows[0]?.updated === true)),
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
       * The session (images, transcript and suggestions cascade), the uploads it took and the
       * cached reads of its screenshots, in one transaction: a transcript is gone with its session,
       * and the same screenshot is read again; no upload row is left pointing at objects of a
       * deleted session, and an attempt still running finds nothing to record its normalised images
       * on. The row is locked first, so a read being cached at this moment (`cacheOcr` holds a key
       * share on it) either lands before and is deleted here, or finds the session gone. False when
       * it was gone.
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
            yield* queryWith(
              tx,
              "sessions.remove.uploads",
              (c) => c.$executeRaw`
                DELETE FROM uploads u USING session_images i
                WHERE i.session_id = ${id} AND u.id = i.upload_id AND u.purpose = 'session'`
            )
            yield* queryWith(tx, "sessions.remove.row", (c) => c.session.deleteMany({ where: { id, userId } }))
            return true
          })
        ),
      /**
       * The keys of a session's originals and when their retention ends (null: none runs): what
       * an ending session deletes. Null when the session is gone.
       */
      originalsOf: (id: string) =>
        db.query("sessions.originalsOf", (c) =>
          c.session.findUnique({
            where: { id },
            select: { originalsExpireAt: true, images: { select: { upload: { select: { key: true } } } } }
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
       * there already: its first record stands) and on the session image, in one statement, by
       * the attempt that owns the session, so only while it is queued or processing (else
       * `AttemptStopped`, nothing written: "ended" when it was cancelled, finished or deleted
       * meanwhile, and the caller deletes what it wrote, whoever ended the session having deleted
       * what was recorded before; "superseded" when another attempt took it over, which writes
       * the same keys).
       */
      setImage: (
        owner: { readonly sessionId: string; readonly attempt: string },
        imageId: string,
        uploadId: string,
        fields: ProcessedFields
      ) =>
        Effect.flatMap(
          db.sql<{ ownership: Ownership | null }>(
            "sessions.setImage",
            Prisma.sql`
              WITH ${ownerOf(owner.sessionId, owner.attempt)}, upload AS (
                UPDATE uploads SET image_key = ${fields.imageKey}, thumbnail_key = ${fields.thumbnailKey},
                       content_hash = ${fields.contentHash}, width = ${fields.width}, height = ${fields.height},
                       processed_at = ${fields.processedAt}, updated_at = ${fields.processedAt}
                WHERE id = ${uploadId} AND processed_at IS NULL AND (SELECT ownership FROM owner) = 'owned'
              ), image AS (
                UPDATE session_images SET content_hash = ${fields.contentHash}, image_key = ${fields.imageKey},
                       thumbnail_key = ${fields.thumbnailKey}
                WHERE id = ${imageId} AND (SELECT ownership FROM owner) = 'owned'
              )
              SELECT (SELECT ownership FROM owner) AS ownership`
          ),
          (rows) => settle(rows[0]?.ownership)
        ),
      /**
       * The thumbnail of a screenshot stored after its session ended (cancelled or failed while it
       * was being stored), recorded on the session image and its upload so that it stays with the
       * session like the others; false when the session is gone (the caller deletes the thumbnail).
       */
      keepThumbnail: (imageId: string, uploadId: string, thumbnailKey: string) =>
        Effect.map(
          db.sql<{ kept: boolean }>(
            "sessions.keepThumbnail",
            Prisma.sql`
              WITH image AS (
                UPDATE session_images SET thumbnail_key = ${thumbnailKey} WHERE id = ${imageId} RETURNING id
              ), upload AS (
                UPDATE uploads SET thumbnail_key = ${thumbnailKey}
                WHERE id = ${uploadId} AND EXISTS (SELECT 1 FROM image)
              )
              SELECT EXISTS (SELECT 1 FROM image) AS kept`
          ),
          (rows) => rows[0]?.kept === true
        ),
      /**
       * Through the pool like the job's other statements: with the ledger's (src/core/ai/ledger-db.ts),
       * a session's job sends nothing through Prisma's client, so a worker never instantiates its
       * query compiler (WebAssembly, tens of MiB once optimised) for sessions.
       */
      cachedOcr: (userId: string, contentHash: string) =>
        Effect.map(
          db.sql<{ readonly provider: string; readonly transcript: Prisma.JsonValue }>(
            "sessions.cachedOcr",
            Prisma.sql`SELECT provider, transcript FROM ocr_results WHERE user_id = ${userId} AND content_hash = ${contentHash}`
          ),
          (rows) => rows[0] ?? null
        ),
      /**
       * Kept only while the session exists (its row key-share locked until the insert commits):
       * a read that ends after the session was deleted is not cached (see `remove`). An entry
       * already there stays, unless it is `replacing`, the one found that could not serve this
       * session (cached before the transcript's limits, or a local read of another language): that
       * one is replaced, else it would be read again at every session of the image. Replaced only
       * as found (its provider and transcript), so a read cached meanwhile by another session stays.
       */
      cacheOcr: (
        sessionId: string,
        userId: string,
        contentHash: string,
        transcript: Prisma.InputJsonValue,
        provider: string,
        replacing?: { readonly provider: string; readonly transcript: Prisma.JsonValue }
      ) =>
        db.sql(
          "sessions.cacheOcr",
          Prisma.sql`
            INSERT INTO ocr_results (user_id, content_hash, transcript, provider)
            SELECT ${userId}, ${contentHash}, ${JSON.stringify(transcript)}::jsonb, ${provider}
            WHERE EXISTS (SELECT 1 FROM sessions WHERE id = ${sessionId} FOR KEY SHARE)
            ON CONFLICT (user_id, content_hash) ${
              replacing === undefined
                ? Prisma.sql`DO NOTHING`
                : Prisma.sql`DO UPDATE SET transcript = EXCLUDED.transcript, provider = EXCLUDED.provider,
                                           created_at = now()
                             WHERE ocr_results.provider = ${replacing.provider}
                               AND ocr_results.transcript = ${JSON.stringify(replacing.transcript)}::jsonb`
            }`
        ),
      /**
       * The merged transcript, once, by the attempt that owns the session (else `AttemptStopped`,
       * nothing written): a retry finds the rows already there. How many rows this call wrote.
       */
      saveTranscript: (sessionId: string, attempt: string, messages: ReadonlyArray<MessageRow>) =>
        Effect.flatMap(
          db.sql<{ ownership: Ownership | null; count: number }>(
            "sessions.saveTranscript",
            Prisma.sql`
              WITH ${ownerOf(sessionId, attempt)}, saved AS (
                INSERT INTO transcript_messages (id, session_id, position, sender, text, time, confidence)
                SELECT m.id, ${sessionId}, (m.ordinality - 1)::int, m.sender, m.text, m.time, m.confidence
                FROM unnest(${messages.map(() => newId())}::text[], ${messages.map((m) => m.sender)}::text[],
                            ${messages.map((m) => m.text)}::text[], ${messages.map((m) => m.time)}::text[],
                            ${messages.map((m) => m.confidence)}::float8[])
                     WITH ORDINALITY AS m(id, sender, text, time, confidence, ordinality)
                WHERE (SELECT ownership FROM owner) = 'owned'
                ON CONFLICT (session_id, position) DO NOTHING
                RETURNING 1
              )
              SELECT (SELECT ownership FROM owner) AS ownership, (SELECT count(*)::int FROM saved) AS count`
          ),
          (rows) => Effect.as(settle(rows[0]?.ownership), { count: rows[0]?.count ?? 0 })
        ),
      messages: (sessionId: string) =>
        db.query("sessions.messages", (c) =>
          c.transcriptMessage.findMany({ where: { sessionId }, orderBy: { position: "asc" } })
        ),
      /**
       * A suggestion at (batch, position), in one statement. By a pipeline attempt (`attempt`):
       * only while that attempt owns the running session (else `AttemptStopped`, nothing written),
       * and it replaces only a row an earlier attempt wrote (a retry rewrites the batch), never one
       * of its own; the user's feedback on the replaced row stays only if the text is the same.
       * By a regeneration (`attempt` null): a new row of its new batch.
       */
      saveSuggestion: (data: NewSuggestion, attempt: string | null) =>
        Effect.flatMap(
          db.sql<{ ownership: Ownership | null } & { [K in keyof SavedSuggestion]: SavedSuggestion[K] | null }>(
            "sessions.saveSuggestion",
            Prisma.sql`
              WITH ${ownerOf(data.sessionId, attempt)}, saved AS (
                INSERT INTO suggestions (id, session_id, batch, position, text, tone, prompt_version, provider, model,
                                         attempt_token)
                SELECT ${newId()}, ${data.sessionId}, ${data.batch}::int, ${data.position}::int, ${data.text}, ${data.tone},
                       ${data.promptVersion}, ${data.provider}, ${data.model}, ${attempt}::text
                FROM owner WHERE owner.ownership = 'owned'
                ON CONFLICT (session_id, batch, position) DO UPDATE SET
                  text = EXCLUDED.text, tone = EXCLUDED.tone, prompt_version = EXCLUDED.prompt_version,
                  provider = EXCLUDED.provider, model = EXCLUDED.model, attempt_token = EXCLUDED.attempt_token,
                  feedback = CASE WHEN suggestions.text = EXCLUDED.text THEN suggestions.feedback END,
                  dislike_reason = CASE WHEN suggestions.text = EXCLUDED.text THEN suggestions.dislike_reason END,
                  feedback_at = CASE WHEN suggestions.text = EXCLUDED.text THEN suggestions.feedback_at END
                WHERE suggestions.attempt_token IS DISTINCT FROM EXCLUDED.attempt_token
                RETURNING id, batch, position, text, tone, feedback, dislike_reason AS "dislikeReason"
              )
              SELECT (SELECT ownership FROM owner) AS ownership, saved.*
              FROM (SELECT 1) AS one LEFT JOIN saved ON true`
          ),
          (rows) =>
            Effect.gen(function* () {
              const row = rows[0]
              yield* settle(row?.ownership)
              if (
                row === undefined ||
                row.id === null ||
                row.batch === null ||
                row.position === null ||
                row.text === null ||
                row.tone === null
              ) {
                return yield* Effect.dieMessage("sessions.saveSuggestion: a position written twice by one attempt")
              }
              const saved: SavedSuggestion = {
                id: row.id,
                batch: row.batch,
                position: row.position,
                text: row.text,
                tone: row.tone,
                feedback: row.feedback,
                dislikeReason: row.dislikeReason
              }
              return saved
            })
        ),
      /**
       * Suggestions of `batch` past `count` (left by an earlier attempt that wrote more), by the
       * attempt that owns the session (else `AttemptStopped`, nothing deleted).
       */
      trimSuggestions: (sessionId: string, attempt: string | null, batch: number, count: number) =>
        Effect.flatMap(
          db.sql<{ ownership: Ownership | null }>(
            "sessions.trimSuggestions",
            Prisma.sql`
              WITH ${ownerOf(sessionId, attempt)}, trimmed AS (
                DELETE FROM suggestions
                WHERE session_id = ${sessionId} AND batch = ${batch}::int AND position >= ${count}::int
                  AND (SELECT ownership FROM owner) = 'owned'
              )
              SELECT (SELECT ownership FROM owner) AS ownership`
          ),
          (rows) => settle(rows[0]?.ownership)
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
      ) =>
        db
          .query("sessions.setFeedback", (c): Promise<Suggestion | null> =>
            c.suggestion.update({ where: { id: suggestionId }, data })
          )
          // Gone since it was read: its session deleted, or its account erased, meanwhile.
          .pipe(Effect.catchIf(isRecordNotFound, () => Effect.succeed(null))),
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
      /**
       * The next batch number of a session, taken atomically (two regenerations at once get one
       * each); null when the session is gone since it was read (deleted, or its account erased, meanwhile).
       */
      nextBatch: (sessionId: string) =>
        db
          .query("sessions.nextBatch", (c) =>
            c.session.update({
              where: { id: sessionId },
              data: { lastBatch: { increment: 1 } },
              select: { lastBatch: true }
            })
          )
          .pipe(
            Effect.map((row): number | null => row.lastBatch),
            Effect.catchIf(isRecordNotFound, () => Effect.succeed(null))
          ),
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
      /**
       * When the session's full-size screenshots are to be deleted (SESSION_SCREENSHOT_RETENTION_SECONDS > 0),
       * set by the attempt that owns it (else `AttemptStopped`); `ifUnset`: unless an earlier attempt
       * set it already (a retry does not lengthen the retention).
       */
      setOriginalsExpiryOwned: (
        id: string,
        attempt: string,
        expiresAt: Date,
        now: Date,
        options: { readonly ifUnset?: boolean } = {}
      ) =>
        Effect.asVoid(
          updateOwned(
            "sessions.setOriginalsExpiry",
            id,
            attempt,
            options.ifUnset === true
              ? Prisma.sql`originals_expire_at = COALESCE(originals_expire_at, ${expiresAt}), updated_at = ${now}`
              : Prisma.sql`originals_expire_at = ${expiresAt}, updated_at = ${now}`,
            Prisma.sql`id`
          )
        ),
      /** The sweep's: the session's full-size screenshots are gone (or due at `at`). */
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
       * The session completed by its owning attempt with its cost as the ledger holds it, in one
       * statement: the cost, or `AttemptStopped` when it was cancelled, finished or deleted
       * meanwhile, or another attempt took it over.
       */
      complete: (id: string, attempt: string, at: Date, timings: Record<string, number>) =>
        Effect.map(
          updateOwned<{ readonly cost_micros: number }>(
            "sessions.complete",
            id,
            attempt,
            Prisma.sql`status = 'completed', phase = NULL, completed_at = ${at},
                       timings = ${JSON.stringify(timings)}::jsonb, updated_at = ${at},
                       cost_micros = (SELECT COALESCE(SUM(cost_micros), 0) FROM ai_calls WHERE session_id = ${id})`,
            Prisma.sql`cost_micros`
          ),
          (row) => row.cost_micros
        )
    } as const
  })
}) {}

export type SessionDetail = NonNullable<Effect.Effect.Success<ReturnType<SessionsRepo["find"]>>>
