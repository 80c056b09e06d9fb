/** Prisma access for uploads. Status changes are conditional updates: concurrent readers agree. */
import { Effect, Option } from "effect"
import { Db, queryWith, type TxClient } from "../../core/db/db.ts"
import { newId } from "../../core/db/ids.ts"
import {
  Prisma,
  type PrismaClient,
  type SessionStatus,
  type Upload,
  type UploadPurpose
} from "../../core/db/generated/client.ts"

export type { Upload }

export interface NewUpload {
  readonly userId: string
  readonly key: string
  readonly purpose: UploadPurpose
  readonly contentType: string
  readonly contentLength: number
  readonly expiresAt: Date
}

/** The columns of an upload that verifying and processing it read: what a caller that loaded it already may hand over. */
export type UploadToProcess = Pick<
  Upload,
  | "id"
  | "userId"
  | "key"
  | "purpose"
  | "contentType"
  | "contentLength"
  | "status"
  | "rejectionCode"
  | "rejectionNote"
  | "expiresAt"
  | "imageKey"
  | "thumbnailKey"
  | "contentHash"
  | "width"
  | "height"
>

/** `findWithTombstone`'s row: the tombstone, and the upload's columns (id null, like all, when there is none). */
type UploadOrNoneRow = Omit<Upload, "id"> & { readonly id: string | null; readonly erased: boolean }

/**
 * An upload whose objects a listing found, with the session that took it: what the stray sweep
 * decides on. `sessionStatus` is null when no session took it or its session was deleted.
 */
export interface ObjectOwner extends Pick<
  Upload,
  "key" | "imageKey" | "thumbnailKey" | "status" | "storedAt" | "purpose" | "usedAt"
> {
  readonly sessionStatus: SessionStatus | null
  readonly originalsExpireAt: Date | null
}

export interface ProcessedFields {
  readonly imageKey: string
  readonly thumbnailKey: string
  readonly contentHash: string
  readonly width: number
  readonly height: number
  readonly processedAt: Date
}

export class UploadsRepo extends Effect.Service<UploadsRepo>()("UploadsRepo", {
  effect: Effect.gen(function* () {
    const db = yield* Db

    /**
     * The new upload's row unless its user's erasure has started, in one statement: its id, or
     * none when the user is erased.
     */
    const create = (upload: NewUpload, at: Date) =>
      Effect.map(
        db.sql<{ readonly id: string }>(
          "uploads.create",
          Prisma.sql`
            INSERT INTO uploads (id, user_id, key, purpose, content_type, content_length, expires_at, created_at, updated_at)
            SELECT ${newId()}, ${upload.userId}, ${upload.key}, ${upload.purpose}::upload_purpose, ${upload.contentType},
                   ${upload.contentLength}::int, ${upload.expiresAt}::timestamp, ${at}::timestamp, ${at}::timestamp
            WHERE NOT EXISTS (SELECT 1 FROM erased_accounts WHERE user_id = ${upload.userId})
            RETURNING id`
        ),
        (rows) => Option.fromNullable(rows[0]?.id)
      )

    const findById = (id: string) => db.query("uploads.findById", (c) => c.upload.findUnique({ where: { id } }))

    /**
     * The upload (or null) and whether `userId`'s erasure has started, in one statement: what
     * every use of an upload checks first.
     */
    const findWithTombstone = (userId: string, id: string) =>
      Effect.map(
        db.sql<UploadOrNoneRow>(
          "uploads.findWithTombstone",
          Prisma.sql`
            SELECT EXISTS (SELECT 1 FROM erased_accounts WHERE user_id = ${userId}) AS erased,
                   u.id, u.user_id AS "userId", u.key, u.purpose::text AS purpose, u.content_type AS "contentType",
                   u.content_length AS "contentLength", u.status::text AS status, u.rejection_code AS "rejectionCode",
                   u.rejection_note AS "rejectionNote", u.expires_at AS "expiresAt", u.verified_at AS "verifiedAt",
                   u.stored_at AS "storedAt", u.used_at AS "usedAt", u.image_key AS "imageKey",
                   u.thumbnail_key AS "thumbnailKey", u.content_hash AS "contentHash", u.width, u.height,
                   u.processed_at AS "processedAt", u.created_at AS "createdAt", u.updated_at AS "updatedAt"
            FROM (SELECT 1) AS one LEFT JOIN uploads u ON u.id = ${id}`
        ),
        (rows) => {
          const row = rows[0]
          if (row === undefined) return { erased: false, upload: null }
          const { erased, id, ...columns } = row
          const upload: Upload | null = id === null ? null : { id, ...columns }
          return { erased, upload }
        }
      )

    /** Pending → verified, with the object's last-modified time; answers the row as it is afterwards (whoever won). */
    const markVerified = (id: string, at: Date, storedAt: Date | null) =>
      db.query("uploads.markVerified", async (c) => {
        const [updated] = await c.upload.updateManyAndReturn({
          where: { id, status: "pending" },
          data: { status: "verified", verifiedAt: at, storedAt }
        })
        return updated ?? c.upload.findUnique({ where: { id } })
      })

    /** Pending → rejected, with the catalog code and message saying why. */
    const markRejected = (id: string, code: string, note: string) =>
      db.query("uploads.markRejected", async (c) => {
        await c.upload.updateMany({
          where: { id, status: "pending" },
          data: { status: "rejected", rejectionCode: code, rejectionNote: note }
        })
        return c.upload.findUnique({ where: { id } })
      })

    /**
     * Verified → used; false when another request took it first. On `client`, a transaction's,
     * it is taken together with what uses it (or not at all).
     */
    const markUsed = (id: string, at: Date, client: TxClient | PrismaClient = db.client) =>
      queryWith(client, "uploads.markUsed", (c) =>
        c.upload.updateMany({ where: { id, status: "verified" }, data: { status: "used", usedAt: at } })
      ).pipe(Effect.map((result) => result.count === 1))

    /** The normalised image recorded on the upload's row; false when the row is gone (deleted since it was read). */
    const markProcessed = (id: string, fields: ProcessedFields) =>
      db
        .query("uploads.markProcessed", (c) => c.upload.updateMany({ where: { id }, data: fields }))
        .pipe(Effect.map((result) => result.count === 1))

    /** Uploads no feature took, created before `cutoff`, oldest first. */
    const findUnusedBefore = (cutoff: Date, take: number) =>
      db.query("uploads.findUnusedBefore", (c) =>
        c.upload.findMany({
          where: { status: { not: "used" }, createdAt: { lt: cutoff } },
          orderBy: { createdAt: "asc" },
          take
        })
      )

    /** Deletes the row unless a feature took it meanwhile; true when it was deleted. */
    const removeIfUnused = (id: string) =>
      db
        .query("uploads.removeIfUnused", (c) => c.upload.deleteMany({ where: { id, status: { not: "used" } } }))
        .pipe(Effect.map((result) => result.count === 1))

    /**
     * The uploads whose originals are at `keys` (the normalised images and thumbnails are stored
     * next to them), each with the session that took it, if any, in one statement.
     */
    const findByObjectKeys = (keys: ReadonlyArray<string>) =>
      db.sql<ObjectOwner>(
        "uploads.findByObjectKeys",
        Prisma.sql`
          SELECT u.key, u.image_key AS "imageKey", u.thumbnail_key AS "thumbnailKey", u.status::text AS status,
                 u.stored_at AS "storedAt", u.purpose::text AS purpose, u.used_at AS "usedAt",
                 s.status::text AS "sessionStatus", s.originals_expire_at AS "originalsExpireAt"
          FROM uploads u
          LEFT JOIN session_images i ON i.upload_id = u.id
          LEFT JOIN sessions s ON s.id = i.session_id
          WHERE u.key = ANY(${[...keys]}::text[])`
      )

    /**
     * Deletes the rows of session uploads at `keys` whose session is gone (a session deleted
     * before its uploads went with it): the sweep, once their objects are deleted.
     */
    const removeSessionless = (keys: ReadonlyArray<string>) =>
      db
        .query("uploads.removeSessionless", (c) =>
          c.upload.deleteMany({
            where: { key: { in: [...keys] }, purpose: "session", status: "used", sessionImages: { none: {} } }
          })
        )
        .pipe(Effect.map((result) => result.count))

    const removeAllOf = (userId: string) =>
      db.query("uploads.removeAllOf", (c) => c.upload.deleteMany({ where: { userId } }))

    return {
      create,
      findById,
      findWithTombstone,
      markVerified,
      markRejected,
      markUsed,
      markProcessed,
      findUnusedBefore,
      removeIfUnused,
      findByObjectKeys,
      removeSessionless,
      removeAllOf
    } as const
  })
}) {}
