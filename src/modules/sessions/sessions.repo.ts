/**
 * Prisma access for sessions. Reads for the API are scoped to their owner; the worker reads by
 * id. Every write of the pipeline is idempotent (unique keys, conditional updates), so a retried
 * job never duplicates a row, and a cancelled or deleted session is never brought back.
 */
import { Effect } from "effect"
import { Db, queryWith, type TxClient } from "../../core/db/db.ts"
import { Prisma, type Session } from "../../core/db/generated/client.ts"
import { cursorKey } from "../../core/pagination.ts"

export type { Session }

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

/** A fix names a position the transcript does not have: the transaction is rolled back. */
class MissingMessage extends Error {}

export class SessionsRepo extends Effect.Service<SessionsRepo>()("SessionsRepo", {
  effect: Effect.gen(function* () {
    const db = yield* Db
    return {
      /**
       * The new session row alone (no transcript or suggestions yet; its images are `uploadIds`),
       * in one transaction with `before` (what it takes: its uploads, its quota): a failure of
       * either leaves nothing taken. The row, and what `before` answered.
       */
      create: <B, E>(
        data: Omit<Prisma.SessionUncheckedCreateInput, "images">,
        uploadIds: ReadonlyArray<string>,
        before: (tx: TxClient) => Effect.Effect<B, E>
      ) =>
        db.transaction("sessions.create", (tx) =>
          Effect.flatMap(before(tx), (taken) =>
            Effect.map(
              queryWith(tx, "sessions.create", (c) =>
                c.session.create({
                  data: { ...data, images: { create: uploadIds.map((uploadId, position) => ({ uploadId, position })) } }
                })
              ),
              (row) => ({ row, taken })
            )
          )
        ),
      find: (userId: string, id: string) =>
        db.query("sessions.find", (c) => c.session.findFirst({ where: { id, userId }, include: detail })),
      /** Status, phase and error code of one of the user's sessions (what following it needs), or null. */
      stateOf: (userId: string, id: string) =>
        db.query("sessions.stateOf", (c) =>
          c.session.findFirst({ where: { id, userId }, select: { status: true, phase: true, errorCode: true } })
        ),
      /**
       * The worker's read: by id only (the job carries the owner, checked by the caller), with the
       * images and any transcript saved by an earlier attempt (not the suggestions: batch 0 is rewritten).
       */
      findForJob: (id: string) =>
        db.query("sessions.findForJob", (c) =>
          c.session.findUnique({ where: { id }, include: { images: detail.images, messages: detail.messages } })
        ),
      /**
       * A page of summaries, newest first. The app's most frequent read, so one SQL statement
       * written out: Prisma's client-side planning of the same `findMany` (with `_count`) cost more
       * CPU than the rest of the request.
       */
      list: (userId: string, matchId: string | undefined, limit: number, cursor: string | undefined) =>
        Effect.flatMap(cursorKey(cursor), (after) =>
          db.query(
            "sessions.list",
            (c) => c.$queryRaw<Array<SummaryRow>>`
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
      cancel: (userId: string, id: string, at: Date) =>
        db
          .query("sessions.cancel", (c) =>
            c.session.updateMany({
              where: { id, userId, status: { in: RUNNING } },
              data: { status: "cancelled", phase: null, completedAt: at }
            })
          )
          .pipe(Effect.map(({ count }) => count > 0)),
      remove: (userId: string, id: string) =>
        db
          .query("sessions.remove", (c) => c.session.deleteMany({ where: { id, userId } }))
          .pipe(Effect.map(({ count }) => count > 0)),
      idsOf: (userId: string) =>
        db
          .query("sessions.idsOf", (c) => c.session.findMany({ where: { userId }, select: { id: true } }))
          .pipe(Effect.map((rows) => rows.map((row) => row.id))),
      setImage: (imageId: string, data: { contentHash: string; imageKey: string; thumbnailKey: string }) =>
        db.query("sessions.setImage", (c) => c.sessionImage.update({ where: { id: imageId }, data })),
      cachedOcr: (userId: string, contentHash: string) =>
        db.query("sessions.cachedOcr", (c) =>
          c.ocrResult.findUnique({ where: { userId_contentHash: { userId, contentHash } } })
        ),
      cacheOcr: (userId: string, contentHash: string, transcript: Prisma.InputJsonValue, provider: string) =>
        db.query("sessions.cacheOcr", (c) =>
          c.ocrResult.createMany({ data: [{ userId, contentHash, transcript, provider }], skipDuplicates: true })
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
      originalsDue: (now: Date, limit: number) =>
        db.query("sessions.originalsDue", (c) =>
          c.session.findMany({
            where: { originalsExpireAt: { lte: now } },
            orderBy: { originalsExpireAt: "asc" },
            take: limit,
            select: { id: true, images: { select: { imageKey: true, upload: { select: { key: true } } } } }
          })
        ),
      /** The user's liked and disliked suggestions, to shape the prompt. */
      feedbackOf: (userId: string) =>
        db.query("sessions.feedbackOf", async (c) => {
          const [liked, disliked] = await Promise.all([
            c.suggestion.findMany({
              where: { session: { userId }, feedback: "liked" },
              orderBy: { feedbackAt: "desc" },
              take: 5
            }),
            c.suggestion.findMany({
              where: { session: { userId }, feedback: "disliked" },
              orderBy: { feedbackAt: "desc" },
              take: 5
            })
          ])
          return { liked, disliked }
        })
    } as const
  })
}) {}

export type SessionDetail = NonNullable<Effect.Effect.Success<ReturnType<SessionsRepo["find"]>>>
