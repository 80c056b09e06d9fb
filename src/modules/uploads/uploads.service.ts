/**
 * Uploads: pre-signed URLs for images the app sends straight to storage, their verification
 * (the object exists, its size and type match the declaration, its bytes are that format), their
 * use by a feature (sessions, openers) and their normalisation; unused uploads are swept away.
 *
 * Other modules call `verify`, `use` and `process` with an upload id, never with a URL: nothing
 * here fetches a user-supplied URL. From the moment a user's erasure starts (its tombstone), their
 * uploads are neither created nor verified, and the sweep empties their prefix of what lands later.
 */
import { Clock, Duration, Effect, Layer, Option, Ref, Schedule } from "effect"
import { randomBytes } from "node:crypto"
import { AppConfig } from "../../core/config.ts"
import { Erasure, Tombstones } from "../../core/erasure.ts"
import type { DbError, TxClient } from "../../core/db/db.ts"
import { ImageProcessor, type ImageError } from "../../core/image/image-processor.ts"
import { detectImageType, MAGIC_BYTES } from "../../core/image/magic.ts"
import { type ListedObject, type StorageError, userPrefix } from "../../core/storage/model.ts"
import { Storage } from "../../core/storage/storage.ts"
import { notFound, ownedBy } from "../../core/ownership.ts"
import {
  accountErased,
  ImageTooLarge,
  ImageUnreadable,
  PayloadTooLarge,
  UnsupportedMediaType,
  UploadAlreadyUsed,
  UploadContentMismatch,
  UploadExpired,
  UploadNotReceived,
  UploadPurposeMismatch,
  UploadSizeMismatch,
  UploadTypeMismatch
} from "../../domain/errors.ts"
import {
  type AcceptedImageType,
  AcceptedImageTypes,
  type CreateUpload,
  type Upload as UploadView,
  type UploadPurpose,
  type UploadTicket
} from "../../domain/uploads.ts"
import {
  type ObjectOwner,
  type ProcessedFields,
  type Upload,
  UploadsRepo,
  type UploadToProcess
} from "./uploads.repo.ts"

/** An upload whose bytes are in storage and match its declaration. */
export interface VerifiedUpload {
  readonly id: string
  readonly userId: string
  readonly key: string
  readonly purpose: UploadPurpose
  readonly contentType: AcceptedImageType
  readonly contentLength: number
}

/** The normalised image derived from an upload, and where it is stored. */
export interface ProcessedUpload {
  readonly uploadId: string
  readonly imageKey: string
  readonly thumbnailKey: string
  readonly contentHash: string
  readonly width: number
  readonly height: number
}

/** An upload row a caller already read, and whether its owner's erasure had started then. */
export interface KnownUpload {
  readonly upload: UploadToProcess
  readonly erased: boolean
}

const HEIC_TYPES = new Set(["image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence"])

/** `Image/JPG; charset=x` → `image/jpeg`. */
const canonicalType = (contentType: string): string => {
  const type = (contentType.split(";")[0] ?? "").trim().toLowerCase()
  return type === "image/jpg" || type === "image/pjpeg" ? "image/jpeg" : type
}

const acceptedType = (contentType: string): AcceptedImageType | undefined =>
  AcceptedImageTypes.find((accepted) => accepted === contentType)

const EXTENSIONS: Record<string, string> = { "image/webp": "webp", "image/jpeg": "jpg" }

/** Every extension a normalised image may have been stored with, whatever IMAGE_FORMAT was then. */
const STORED_EXTENSIONS = ["webp", "jpg", "img"] as const

/**
 * The keys at which the full-size copies of the original at `key` may be: the original and its
 * normalised image (`<key>.webp`, `<key>.jpg`), recorded or not (an attempt stopped between
 * writing and recording leaves it unrecorded). Not the thumbnails.
 */
export const fullSizeKeysOf = (key: string): ReadonlyArray<string> => [
  key,
  ...STORED_EXTENSIONS.map((extension) => `${key}.${extension}`)
]

/** Every key an upload's objects may be at: its full-size copies and its thumbnail. */
export const objectKeysOf = (key: string): ReadonlyArray<string> => [
  ...fullSizeKeysOf(key),
  ...STORED_EXTENSIONS.map((extension) => `${key}.thumb.${extension}`)
]

/** The original's key of a normalised image or thumbnail (`<key>.webp`, `<key>.thumb.webp`); other keys as they are. */
const originalKeyOf = (key: string): string => key.replace(/\.(?:thumb\.)?(?:webp|jpg|img)$/, "")

type RejectionCode = "UPLOAD_SIZE_MISMATCH" | "UPLOAD_TYPE_MISMATCH" | "UPLOAD_CONTENT_MISMATCH"

type StorageCheck =
  | { readonly _tag: "Absent" }
  | { readonly _tag: "Matches"; readonly lastModified: Date | undefined }
  | { readonly _tag: "Mismatch"; readonly code: RejectionCode; readonly note: string }

const mismatch = (code: RejectionCode, note: string): StorageCheck => ({ _tag: "Mismatch", code, note })

/** How many rows one sweep looks at per round. */
const SWEEP_BATCH = 100

/** A stored rejection, as the error the caller gets. */
const rejectionError = (upload: Pick<Upload, "rejectionCode" | "rejectionNote">) => {
  const message = upload.rejectionNote ?? "The uploaded object does not match its declaration"
  switch (upload.rejectionCode) {
    case "UPLOAD_SIZE_MISMATCH":
      return new UploadSizeMismatch({ message })
    case "UPLOAD_TYPE_MISMATCH":
      return new UploadTypeMismatch({ message })
    default:
      return new UploadContentMismatch({ message })
  }
}

/** What storing and recording a normalised image can fail with (`RecordError`: its `record`'s own). */
export type StoreError<RecordError> = ImageTooLarge | ImageUnreadable | StorageError | DbError | RecordError

const imageFailure = (error: ImageError) =>
  error.reason === "too-large"
    ? new ImageTooLarge({ message: error.message, details: error.details })
    : new ImageUnreadable({ message: error.message })

export class UploadsService extends Effect.Service<UploadsService>()("UploadsService", {
  effect: Effect.gen(function* () {
    const repo = yield* UploadsRepo
    const tombstones = yield* Tombstones
    const storage = yield* Storage
    const images = yield* ImageProcessor
    const config = yield* AppConfig
    const limits = config.uploads

    const now = Effect.map(Clock.currentTimeMillis, (millis) => new Date(millis))

    const create = (userId: string, input: CreateUpload) =>
      Effect.gen(function* () {
        const declared = canonicalType(input.contentType)
        const details = { contentType: input.contentType, accepted: AcceptedImageTypes }
        if (HEIC_TYPES.has(declared)) {
          return yield* new UnsupportedMediaType({
            message:
              "HEIC/HEIF images are not accepted: the app must convert them to JPEG (or PNG or WebP) before uploading",
            details
          })
        }
        const contentType = acceptedType(declared)
        if (contentType === undefined) {
          return yield* new UnsupportedMediaType({ message: "Only PNG, JPEG and WebP images are accepted", details })
        }
        if (input.contentLength > limits.maxBytes) {
          return yield* new PayloadTooLarge({
            message: `An upload may be at most ${limits.maxBytes} bytes`,
            details: { maxBytes: limits.maxBytes, contentLength: input.contentLength }
          })
        }
        // The key is the server's: under the owner's prefix, with a random name.
        const key = `${userPrefix(userId)}uploads/${randomBytes(16).toString("hex")}`
        const signed = yield* storage.signUpload({
          key,
          contentType,
          contentLength: input.contentLength,
          expiresInSeconds: limits.urlTtlSeconds
        })
        const created = yield* repo.create(
          {
            userId,
            key,
            purpose: input.purpose,
            contentType,
            contentLength: input.contentLength,
            expiresAt: signed.expiresAt
          },
          yield* now
        )
        // A token mapped before the erasure started (another api's cache) must not open a new URL:
        // no row is written for an erased user, and the signed URL is not handed out.
        if (Option.isNone(created)) {
          return yield* accountErased()
        }
        const uploadId = created.value
        yield* Effect.logInfo("Upload URL issued").pipe(Effect.annotateLogs({ uploadId, userId }))
        return {
          uploadId,
          url: signed.url,
          method: "PUT",
          headers: signed.headers,
          expiresAt: signed.expiresAt
        } satisfies UploadTicket
      })

    /** The stored object against the declaration: absent, matching, or the first mismatch found. */
    const check = (upload: Upload): Effect.Effect<StorageCheck, StorageError> =>
      Effect.gen(function* () {
        const info = yield* storage.head(upload.key)
        if (Option.isNone(info)) return { _tag: "Absent" }
        const { size, contentType } = info.value
        if (size !== upload.contentLength) {
          return mismatch(
            "UPLOAD_SIZE_MISMATCH",
            `The uploaded object is ${size} bytes; ${upload.contentLength} were declared`
          )
        }
        if (contentType === undefined || canonicalType(contentType) !== upload.contentType) {
          return mismatch(
            "UPLOAD_TYPE_MISMATCH",
            `The uploaded object is stored as ${contentType ?? "no type"}; ${upload.contentType} was declared`
          )
        }
        const head = yield* storage.get(upload.key, { start: 0, end: MAGIC_BYTES - 1 })
        if (Option.isNone(head)) return { _tag: "Absent" }
        const detected = detectImageType(head.value)
        if (detected !== upload.contentType) {
          const actual = detected === undefined ? "not a PNG, JPEG or WebP image" : `a ${detected} image`
          return mismatch(
            "UPLOAD_CONTENT_MISMATCH",
            `The uploaded bytes are ${actual}; ${upload.contentType} was declared`
          )
        }
        return { _tag: "Matches", lastModified: info.value.lastModified }
      })

    /**
     * A pending upload is checked against storage: its bytes arrived and match (→ verified), or
     * they do not (→ rejected, and the object is deleted), or they have not arrived (unchanged).
     */
    const inspect = (upload: Upload) =>
      Effect.gen(function* () {
        if (upload.status !== "pending") return upload
        const problem = yield* check(upload)
        if (problem._tag === "Absent") return upload
        if (problem._tag === "Matches") {
          const verified = yield* repo.markVerified(upload.id, yield* now, problem.lastModified ?? null)
          yield* Effect.logInfo("Upload verified").pipe(Effect.annotateLogs({ uploadId: upload.id }))
          return verified ?? upload
        }
        const rejected = yield* repo.markRejected(upload.id, problem.code, problem.note)
        yield* Effect.logWarning("Upload rejected").pipe(
          Effect.annotateLogs({ uploadId: upload.id, code: problem.code })
        )
        yield* storage
          .remove([upload.key])
          .pipe(Effect.catchAll((error) => Effect.logWarning("Could not delete a rejected upload's object", error)))
        return rejected ?? upload
      })

    /**
     * The caller's upload, inspected; another user's answers exactly like a missing one. A user
     * whose erasure started (a request let in by a token mapping cached before) is refused as its
     * requests now are, `account-erased`: nothing of theirs is verified or used.
     */
    const load = (userId: string, uploadId: string) =>
      Effect.gen(function* () {
        const { erased, upload } = yield* repo.findWithTombstone(userId, uploadId)
        if (erased) return yield* accountErased()
        return yield* Effect.flatMap(ownedBy(userId, "Upload")(upload), inspect)
      })

    const isExpired = (upload: Pick<Upload, "status" | "expiresAt">, at: Date) =>
      upload.status === "pending" && upload.expiresAt.getTime() < at.getTime()

    const toView = (upload: Upload, at: Date): UploadView => ({
      id: upload.id,
      purpose: upload.purpose,
      contentType: upload.contentType,
      contentLength: upload.contentLength,
      status: isExpired(upload, at) ? "expired" : upload.status,
      rejection:
        upload.status === "rejected"
          ? { code: upload.rejectionCode ?? "UPLOAD_CONTENT_MISMATCH", message: rejectionError(upload).message }
          : null,
      expiresAt: upload.expiresAt,
      verifiedAt: upload.verifiedAt,
      createdAt: upload.createdAt
    })

    /** GET /uploads/:id: the status, after checking a pending upload against storage. */
    const status = (userId: string, uploadId: string) =>
      Effect.gen(function* () {
        const upload = yield* load(userId, uploadId)
        return toView(upload, yield* now)
      })

    const verified = (upload: UploadToProcess) =>
      Effect.gen(function* () {
        if (upload.status === "rejected") return yield* rejectionError(upload)
        if (upload.status === "pending") {
          return yield* isExpired(upload, yield* now)
            ? new UploadExpired({ message: "The upload URL expired before the image was uploaded: start a new upload" })
            : new UploadNotReceived({ message: "The image has not been uploaded yet: PUT it to the upload URL first" })
        }
        const contentType = acceptedType(upload.contentType)
        if (contentType === undefined) {
          return yield* new UploadContentMismatch({ message: `${upload.contentType} is not an accepted image type` })
        }
        return {
          id: upload.id,
          userId: upload.userId,
          key: upload.key,
          purpose: upload.purpose,
          contentType,
          contentLength: upload.contentLength
        } satisfies VerifiedUpload
      })

    /**
     * The caller's upload if its bytes are in storage and match the declaration; otherwise the
     * 4xx saying which check failed. Does not consume it.
     */
    const verify = (userId: string, uploadId: string) => Effect.flatMap(load(userId, uploadId), verified)

    const alreadyUsed = () => new UploadAlreadyUsed({ message: "This upload was already used: upload the image again" })

    /** Verifies the upload and checks that it can be taken for `purpose` (unused), without taking it. */
    const usable = (userId: string, uploadId: string, purpose: UploadPurpose) =>
      Effect.gen(function* () {
        const upload = yield* load(userId, uploadId)
        if (upload.status === "used") return yield* alreadyUsed()
        const checked = yield* verified(upload)
        if (checked.purpose !== purpose) {
          return yield* new UploadPurposeMismatch({
            message: `This upload was declared for ${checked.purpose}, not ${purpose}`,
            details: { declared: checked.purpose, requested: purpose }
          })
        }
        return checked
      })

    /**
     * Takes a `usable` upload (once: `UploadAlreadyUsed` when another request took it first). On
     * `tx`, it is taken with what the transaction writes, or not at all.
     */
    const take = (uploadId: string, tx?: TxClient) =>
      Effect.gen(function* () {
        if (!(yield* repo.markUsed(uploadId, yield* now, tx))) return yield* alreadyUsed()
      })

    /** Verifies the upload and takes it for `purpose` (once: a second use is refused). */
    const use = (userId: string, uploadId: string, purpose: UploadPurpose) =>
      Effect.tap(usable(userId, uploadId, purpose), (checked) => take(checked.id))

    /**
     * The upload as `load` answers it, from a row the caller already read with whether the user's
     * erasure has started (`known`): the same answers without reading them again. A pending one
     * is loaded (and inspected) afresh.
     */
    const loadKnown = (userId: string, uploadId: string, known: KnownUpload | undefined) =>
      known === undefined || known.upload.status === "pending"
        ? load(userId, uploadId)
        : known.erased
          ? Effect.fail(accountErased())
          : known.upload.userId !== userId || known.upload.id !== uploadId
            ? Effect.fail(notFound("Upload"))
            : Effect.succeed(known.upload)

    /**
     * `process`, with the normalised image's bytes when this call made them (undefined when they
     * were recorded earlier): a caller reading the image next need not fetch it back from storage.
     *
     * The normalised image of a verified (or used) upload: decoded within the pixel limit,
     * oriented, stripped of metadata, resized, encoded, with a thumbnail; stored next to the
     * original and recorded by `options.record`, which writes it on the upload's row (and may
     * write more with it). Done once; later calls answer the record.
     *
     * With `options.storeLater`, the image's bytes come back before its thumbnail is made and
     * anything is stored or recorded: `store` does that once `needed` completes (or it is
     * interrupted); the caller runs it.
     */
    const processWithImage = <RecordError>(
      userId: string,
      uploadId: string,
      options: {
        readonly known?: KnownUpload
        readonly record: (uploadId: string, fields: ProcessedFields) => Effect.Effect<unknown, DbError | RecordError>
        readonly storeLater?: boolean
      }
    ) =>
      Effect.gen(function* () {
        const upload = yield* loadKnown(userId, uploadId, options.known)
        const checked = yield* verified(upload)
        if (
          upload.imageKey !== null &&
          upload.thumbnailKey !== null &&
          upload.contentHash !== null &&
          upload.width !== null &&
          upload.height !== null
        ) {
          const processed: ProcessedUpload = {
            uploadId: upload.id,
            imageKey: upload.imageKey,
            thumbnailKey: upload.thumbnailKey,
            contentHash: upload.contentHash,
            width: upload.width,
            height: upload.height
          }
          return { processed, image: undefined, store: undefined }
        }
        const bytes = yield* storage.get(checked.key)
        if (Option.isNone(bytes)) {
          return yield* new UploadNotReceived({ message: "The uploaded image is no longer in storage" })
        }
        const normalized = yield* images.normalizeImage(bytes.value).pipe(Effect.mapError(imageFailure))
        // The bytes may have been replaced since verification (the URL allows PUT until it expires).
        if (`image/${normalized.source.format}` !== checked.contentType) {
          return yield* new UploadContentMismatch({
            message: `The uploaded bytes are a ${normalized.source.format} image; ${checked.contentType} was declared`
          })
        }
        const extension = EXTENSIONS[normalized.image.contentType] ?? "img"
        const processed: ProcessedUpload = {
          uploadId: upload.id,
          imageKey: `${checked.key}.${extension}`,
          thumbnailKey: `${checked.key}.thumb.${extension}`,
          contentHash: normalized.contentHash,
          width: normalized.image.width,
          height: normalized.image.height
        }
        // Made, written and recorded as one step, not interrupted half-way: a write abandoned in flight
        // may land after whoever stopped the caller deleted the upload's objects, with nothing recording
        // it. Stopped meanwhile, `record` finds nothing to record on and deletes what was written. Only
        // the wait for `needed` is cut short by an interruption.
        const store = (needed: Effect.Effect<void>): Effect.Effect<void, StoreError<RecordError>> =>
          Effect.uninterruptibleMask((restore) =>
            Effect.gen(function* () {
              yield* Effect.exit(restore(needed))
              const thumbnail = yield* images.thumbnailOf(normalized.image).pipe(Effect.mapError(imageFailure))
              const processedAt = yield* now
              yield* Effect.zipRight(
                // Both at once: on S3 each is a round trip.
                Effect.all(
                  [
                    storage.put(processed.imageKey, normalized.image.bytes, normalized.image.contentType),
                    storage.put(processed.thumbnailKey, thumbnail.bytes, thumbnail.contentType)
                  ],
                  { concurrency: 2, discard: true }
                ),
                options.record(upload.id, {
                  imageKey: processed.imageKey,
                  thumbnailKey: processed.thumbnailKey,
                  contentHash: processed.contentHash,
                  width: processed.width,
                  height: processed.height,
                  processedAt
                })
              )
            })
          )
        if (options.storeLater === true) return { processed, image: normalized.image.bytes, store }
        yield* store(Effect.void)
        return { processed, image: normalized.image.bytes, store: undefined }
      })

    /**
     * The normalised image recorded on its upload's row. The row gone since it was read (with an
     * account erased meanwhile, or deleted): what was just written goes, and the caller gets what
     * reading the upload now answers (`account-erased`, or NotFound) rather than an internal error.
     */
    const recordOnUpload = (userId: string) => (id: string, fields: ProcessedFields) =>
      Effect.gen(function* () {
        if (yield* repo.markProcessed(id, fields)) return
        yield* storage
          .remove([fields.imageKey, fields.thumbnailKey])
          .pipe(
            Effect.catchAll((error) =>
              Effect.logWarning("Images of a vanished upload not deleted (the sweep will)", error)
            )
          )
        return yield* tombstones.missingUnlessErased(userId, notFound("Upload"))
      })

    const process = (userId: string, uploadId: string) =>
      Effect.map(processWithImage(userId, uploadId, { record: recordOnUpload(userId) }), (result) => result.processed)

    /**
     * Deletes the uploads no feature took within UPLOAD_RETENTION_SECONDS, rows and objects.
     * Each row goes first (unless it was taken meanwhile), then its objects.
     */
    const sweepUnused = Effect.gen(function* () {
      const cutoff = new Date((yield* Clock.currentTimeMillis) - limits.retentionSeconds * 1000)
      let removed = 0
      let batch: ReadonlyArray<Upload> = []
      do {
        batch = yield* repo.findUnusedBefore(cutoff, SWEEP_BATCH)
        for (const upload of batch) {
          if (!(yield* repo.removeIfUnused(upload.id))) continue
          const keys = [upload.key, upload.imageKey, upload.thumbnailKey].filter((key) => key !== null)
          yield* storage
            .remove(keys)
            .pipe(
              Effect.catchAll((error) =>
                Effect.logWarning("Sweep: objects of an expired upload were not deleted", error)
              )
            )
          removed++
        }
      } while (batch.length === SWEEP_BATCH)
      if (removed > 0) yield* Effect.logInfo(`Sweep: ${removed} unused upload(s) deleted`)
      return removed
    })

    /**
     * Empties the prefix of every user whose erasure started recently: a URL signed before it (S3
     * cannot revoke one) or a job that was running may still have written there. After the
     * window no URL signed before the erasure works, and at least one sweep has run since.
     */
    const sweepErased = Effect.gen(function* () {
      const window = (limits.urlTtlSeconds + 2 * limits.sweepIntervalSeconds) * 1000
      const erased = yield* tombstones.erasedSince(new Date((yield* Clock.currentTimeMillis) - window))
      // One prefix the store does not empty (an object it refuses to delete) stops neither the others nor the strays.
      const removed = yield* Effect.forEach(erased, (userId) =>
        storage
          .removePrefix(userPrefix(userId))
          .pipe(
            Effect.catchAll((error) =>
              Effect.as(Effect.logWarning("Sweep: an erased user's objects not all deleted", error), 0)
            )
          )
      )
      return removed.reduce((sum, count) => sum + count, 0)
    })

    /**
     * What is left of a session upload whose session ended or is gone: `none` (deleted with its
     * session, once the upload was taken longer than the URL TTL ago: the session is written with
     * the taking), `thumbnail` (ended, and no retention of its full-size copies is running:
     * SESSION_SCREENSHOT_RETENTION_SECONDS), or `all` (running, retained, or not a session's).
     */
    const keptOf = (owner: ObjectOwner, settledBefore: number, at: number): "all" | "thumbnail" | "none" => {
      if (owner.purpose !== "session" || owner.status !== "used") return "all"
      if (owner.sessionStatus === null)
        return owner.usedAt !== null && owner.usedAt.getTime() < settledBefore ? "none" : "all"
      if (owner.sessionStatus === "queued" || owner.sessionStatus === "processing") return "all"
      return owner.originalsExpireAt !== null && owner.originalsExpireAt.getTime() > at ? "all" : "thumbnail"
    }

    /**
     * The strays among listed objects, and the upload rows to delete after them:
     * - an original found with another last-modified time than when it was verified, or at a
     *   rejected upload's key (written again after a deletion: the store refuses a second write
     *   only while the object exists);
     * - the full-size copies (original, normalised image, recorded or not) of a session upload
     *   whose session ended (completed, failed, cancelled; unless its retention is running): a
     *   crash or a failed deletion at the session's end leaves none for good;
     * - every object of a session upload whose session is gone, and then its row;
     * - objects no upload refers to, however recent: every upload's row is written before its URL
     *   is handed out, so such an object is no upload in flight but one whose row went (a session
     *   deleted, an account erased) and a late PUT to its URL (S3 cannot revoke one), or what a
     *   crash between deleting a row and its objects left;
     * - once older than the URL TTL (so processing in flight is left alone), a normalised image or
     *   thumbnail its upload does not record.
     */
    const straysOf = (objects: ReadonlyArray<ListedObject>, settledBefore: number, at: number) =>
      Effect.gen(function* () {
        if (objects.length === 0) return { keys: [], sessionless: [] }
        const rows = yield* repo.findByObjectKeys([...new Set(objects.map((object) => originalKeyOf(object.key)))])
        const owners = new Map(rows.map((row) => [row.key, row]))
        const second = (date: Date) => Math.floor(date.getTime() / 1000)
        const sessionless = new Set<string>()
        const keys = objects
          .filter((object) => {
            const owner = owners.get(originalKeyOf(object.key))
            if (owner === undefined) return true
            const kept = keptOf(owner, settledBefore, at)
            if (kept === "none") {
              sessionless.add(owner.key)
              return true
            }
            if (object.key === owner.key) {
              if (owner.status === "rejected" || kept === "thumbnail") return true
              return owner.storedAt !== null && second(owner.storedAt) !== second(object.lastModified)
            }
            const isThumbnail = object.key.startsWith(`${owner.key}.thumb.`)
            if (kept === "thumbnail" && !isThumbnail) return true
            const recorded = object.key === owner.imageKey || object.key === owner.thumbnailKey
            // A thumbnail its ended session never recorded: no attempt will record it now.
            if (kept === "thumbnail" && !recorded) return true
            return !recorded && object.lastModified.getTime() < settledBefore
          })
          .map((object) => object.key)
        return { keys, sessionless: [...sessionless] }
      })

    // Where the stray sweep resumes: each sweep lists at most UPLOAD_SWEEP_MAX_OBJECTS (list calls cost).
    const strayCursor = yield* Ref.make<string | undefined>(undefined)

    /** Deletes `keys`: whether the store did; a failure is logged (a later sweep tries again). */
    const removedAll = (keys: ReadonlyArray<string>) =>
      storage.remove(keys).pipe(
        Effect.as(true),
        Effect.catchAll((error) => Effect.as(Effect.logWarning("Sweep: strays not all deleted", error), false))
      )

    /**
     * Lists `users/` page by page from where the last sweep stopped, and deletes the strays. A page
     * whose deletion fails (S3 refusing a key: a policy, an object lock) is logged and the sweep
     * goes on: one object the store keeps refusing must not shelter every key listed after it.
     */
    const sweepStrays = Effect.gen(function* () {
      const at = yield* Clock.currentTimeMillis
      const settledBefore = at - limits.urlTtlSeconds * 1000
      let after = yield* Ref.get(strayCursor)
      let listed = 0
      let removed = 0
      do {
        const page = yield* storage.list("users/", { after, limit: Math.min(1000, limits.sweepMaxObjects - listed) })
        listed += page.objects.length
        const strays = yield* straysOf(page.objects, settledBefore, at)
        if (yield* removedAll(strays.keys)) removed += strays.keys.length
        // Every object such an upload may have, listed on this page or not, then its row (kept while
        // any of them may remain: it is what leads the sweep back to them).
        if (strays.sessionless.length > 0 && (yield* removedAll(strays.sessionless.flatMap(objectKeysOf)))) {
          yield* repo.removeSessionless(strays.sessionless)
        }
        after = page.more ? page.objects.at(-1)?.key : undefined
      } while (after !== undefined && listed < limits.sweepMaxObjects)
      yield* Ref.set(strayCursor, after)
      return removed
    })

    /**
     * One sweep: unused uploads, erased users' prefixes, strays. Answers how many unused uploads
     * it deleted; the other counts are logged.
     */
    const sweep = Effect.gen(function* () {
      const removed = yield* sweepUnused
      const erased = yield* sweepErased
      const strays = yield* sweepStrays
      if (erased + strays > 0) {
        yield* Effect.logInfo("Sweep: objects of erased users and strays deleted").pipe(
          Effect.annotateLogs({ erased, strays })
        )
      }
      return removed
    })

    /** Everything the user uploaded or derived: objects under their prefix, then the rows. */
    const eraseUser = (userId: string) =>
      Effect.gen(function* () {
        const objects = yield* storage.removePrefix(userPrefix(userId))
        const rows = yield* repo.removeAllOf(userId)
        yield* Effect.logInfo("Uploads erased").pipe(Effect.annotateLogs({ objects, rows: rows.count }))
      })

    return {
      create,
      status,
      verify,
      usable,
      alreadyUsed,
      take,
      use,
      process,
      processWithImage,
      sweep,
      eraseUser
    } as const
  }),
  dependencies: [UploadsRepo.Default, Tombstones.Default]
}) {}

/** Registers the uploads' erasure step: stored objects (originals and derived images) and rows. */
export const UploadsErasureLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const erasure = yield* Erasure
    const uploads = yield* UploadsService
    yield* erasure.register({ name: "uploads", erase: (user) => uploads.eraseUser(user.id) })
  })
)

/** Runs `sweep` every `interval` (first after one interval) for as long as the scope lives; failures are logged. */
export const sweepEvery = <E, R>(
  interval: Duration.DurationInput,
  sweep: Effect.Effect<unknown, E, R>,
  what = "Sweep of unused uploads"
) =>
  sweep.pipe(
    Effect.catchAllCause((cause) => Effect.logWarning(`${what} failed`, cause)),
    Effect.schedule(Schedule.spaced(interval)),
    Effect.forkScoped,
    Effect.asVoid
  )

/** The background sweeper of unused uploads (UPLOAD_SWEEP_INTERVAL_SECONDS). */
export const UploadsSweeperLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const uploads = yield* UploadsService
    yield* sweepEvery(Duration.seconds(config.uploads.sweepIntervalSeconds), uploads.sweep)
  })
)
