/**
 * `/api/v1/uploads` on the local storage (the embedded default) against the real PostgreSQL:
 * pre-signed uploads, verification, ownership, use, normalisation, expiry, sweeping, erasure.
 */
import { afterAll, describe, expect, layer } from "@effect/vitest"
import { Effect, Either } from "effect"
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import sharp from "sharp"
import { TestDb, sql } from "../../support/database.ts"
import { failure, http, issuePaths } from "../../support/http.ts"
import { baseUrl, localTestStorage, testServer } from "../../support/server.ts"
import {
  createUpload,
  exposeUploadsService,
  getUpload,
  rejectedAs,
  sendBytes,
  type Ticket,
  ticketFor
} from "../../support/uploads.ts"
import { twoUsers } from "../../support/users.ts"
import {
  GPS_MARKER,
  orientedJpegWithGps,
  pngBomb,
  randomNoise,
  tinyImage,
  truncatedPng
} from "../../fixtures/images.ts"

const root = mkdtempSync(join(tmpdir(), "wingmate-uploads-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const uploads = exposeUploadsService()

const objectFile = (key: string) => join(root, "objects", ...key.split("/"))
const filesUnder = (userId: string) => {
  const dir = join(root, "objects", "users", userId)
  if (!existsSync(dir)) return []
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
    .sort()
}

const uploadRows = (userId: string) => sql("SELECT * FROM uploads WHERE user_id = $1 ORDER BY created_at", [userId])

const uploadRow = (id: string) => Effect.map(sql("SELECT * FROM uploads WHERE id = $1", [id]), (rows) => rows[0])

const ACCEPTED = ["image/png", "image/jpeg", "image/webp"]

const KEY = /^users\/[a-z0-9]+\/uploads\/[0-9a-f]{32}$/

const Server = testServer({
  db: TestDb(),
  storage: localTestStorage({ root }),
  routes: uploads.layer,
  config: { UPLOAD_MAX_BYTES: "1000000" }
})

/** Upload `bytes` through the API, the app's two steps; answers the ticket. */
const uploaded = (url: string, headers: Record<string, string>, bytes: Uint8Array, contentType = "image/png") =>
  Effect.gen(function* () {
    const ticket = yield* ticketFor(url, headers, bytes, contentType)
    const put = yield* sendBytes(ticket, bytes)
    expect(put.status).toBe(200)
    return ticket
  })

layer(Server, { timeout: 60_000 })("uploads", (it) => {
  describe("POST /uploads", () => {
    it.effect("answers a signed PUT for exactly this type and length, and records the upload", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const before = Date.now()
        const res = yield* createUpload(url, alice.headers, {
          contentType: "image/png",
          contentLength: 12_345,
          purpose: "session"
        })
        const after = Date.now()
        expect(res.status).toBe(201)
        expect(res.body).toEqual({
          success: true,
          data: {
            uploadId: expect.any(String),
            url: expect.stringMatching(
              new RegExp(
                `^${url}/storage/users/${alice.id}/uploads/[0-9a-f]{32}\\?expires=\\d+&type=image%2Fpng&length=12345&signature=[A-Za-z0-9_-]{43}$`
              )
            ),
            method: "PUT",
            headers: { "Content-Type": "image/png", "Content-Length": "12345" },
            expiresAt: expect.any(String)
          }
        })
        const ticket = (res.body as { data: Ticket }).data
        // Five minutes from when the server signed it, somewhere between the request and its answer
        // (however long a loaded machine took: not "within a second of the request").
        const expiresAt = Date.parse(ticket.expiresAt)
        expect(expiresAt - before).toBeGreaterThan(295_000)
        expect(expiresAt - after).toBeLessThanOrEqual(301_000)

        const rows = yield* uploadRows(alice.id)
        expect(rows).toEqual([
          expect.objectContaining({
            id: ticket.uploadId,
            user_id: alice.id,
            key: expect.stringMatching(KEY),
            purpose: "session",
            content_type: "image/png",
            content_length: 12_345,
            status: "pending",
            rejection_code: null,
            expires_at: new Date(ticket.expiresAt),
            verified_at: null,
            used_at: null,
            image_key: null,
            content_hash: null
          })
        ])
        expect(ticket.url).toContain(`/storage/${String(rows[0]?.["key"])}?`)
      })
    )

    it.effect("HEIC is refused with 415 telling the app to convert it; other types too; nothing is recorded", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const heic = yield* createUpload(url, alice.headers, {
          contentType: "image/heic",
          contentLength: 1000,
          purpose: "session"
        })
        expect(heic.status).toBe(415)
        expect(heic.body).toEqual(
          failure(
            "UNSUPPORTED_MEDIA_TYPE",
            "HEIC/HEIF images are not accepted: the app must convert them to JPEG (or PNG or WebP) before uploading",
            { contentType: "image/heic", accepted: ACCEPTED }
          )
        )
        for (const contentType of ["image/gif", "image/svg+xml", "application/pdf", "text/html"]) {
          const res = yield* createUpload(url, alice.headers, { contentType, contentLength: 1000, purpose: "profile" })
          expect(res.status, contentType).toBe(415)
          expect(res.body).toEqual(
            failure("UNSUPPORTED_MEDIA_TYPE", "Only PNG, JPEG and WebP images are accepted", {
              contentType,
              accepted: ACCEPTED
            })
          )
        }
        expect(yield* uploadRows(alice.id)).toEqual([])
      })
    )

    it.effect("more than UPLOAD_MAX_BYTES is refused with 413; image/jpg is taken as image/jpeg", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const big = yield* createUpload(url, alice.headers, {
          contentType: "image/png",
          contentLength: 1_000_001,
          purpose: "session"
        })
        expect(big.status).toBe(413)
        expect(big.body).toEqual(
          failure("PAYLOAD_TOO_LARGE", "An upload may be at most 1000000 bytes", {
            maxBytes: 1_000_000,
            contentLength: 1_000_001
          })
        )
        const jpg = yield* createUpload(url, alice.headers, {
          contentType: "image/JPG",
          contentLength: 1_000_000,
          purpose: "profile"
        })
        expect(jpg.status).toBe(201)
        expect(jpg.body).toMatchObject({ data: { headers: { "Content-Type": "image/jpeg" } } })
        expect(yield* uploadRows(alice.id)).toEqual([
          expect.objectContaining({ content_type: "image/jpeg", content_length: 1_000_000, purpose: "profile" })
        ])
      })
    )

    it.effect("the body is validated field by field; no token is a 401", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const res = yield* http(`${url}/api/v1/uploads`, {
          method: "POST",
          headers: { "content-type": "application/json", ...alice.headers },
          body: JSON.stringify({ contentType: "image/png", contentLength: -1, purpose: "avatar", key: "x" })
        })
        expect(res.status).toBe(400)
        expect(res.body).toMatchObject({ success: false, error: { code: "VALIDATION_ERROR" } })
        expect(issuePaths(res.body)).toEqual(["contentLength", "key", "purpose"])

        const anonymous = yield* createUpload(
          url,
          {},
          { contentType: "image/png", contentLength: 1, purpose: "session" }
        )
        expect(anonymous.status).toBe(401)
        expect(anonymous.body).toEqual(failure("UNAUTHORIZED", "Authentication failed", { reason: "missing-token" }))
        expect(yield* uploadRows(alice.id)).toEqual([])
      })
    )
  })

  describe("GET /uploads/:id", () => {
    it.effect("pending until the bytes arrive, then verified (the app's two steps, then the status)", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const png = yield* Effect.promise(() => tinyImage("png"))
        const ticket = yield* ticketFor(url, alice.headers, png)

        const pending = yield* getUpload(url, alice.headers, ticket.uploadId)
        expect(pending.status).toBe(200)
        expect(pending.body).toEqual({
          success: true,
          data: {
            id: ticket.uploadId,
            purpose: "session",
            contentType: "image/png",
            contentLength: png.length,
            status: "pending",
            rejection: null,
            expiresAt: ticket.expiresAt,
            verifiedAt: null,
            createdAt: expect.any(String)
          }
        })

        const put = yield* sendBytes(ticket, png)
        expect(put.status).toBe(200)
        expect(put.text).toBe("")
        const [row] = yield* uploadRows(alice.id)
        expect(readFileSync(objectFile(String(row?.["key"])))).toEqual(png)

        const verified = yield* getUpload(url, alice.headers, ticket.uploadId)
        expect(verified.status).toBe(200)
        expect(verified.body).toMatchObject({
          success: true,
          data: { id: ticket.uploadId, status: "verified", rejection: null, verifiedAt: expect.any(String) }
        })
        expect(yield* uploadRow(ticket.uploadId)).toMatchObject({ status: "verified", verified_at: expect.any(Date) })
      })
    )

    it.effect("another user's upload answers exactly like a missing one", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const png = yield* Effect.promise(() => tinyImage("png"))
        const ticket = yield* uploaded(url, alice.headers, png)

        const theirs = yield* getUpload(url, bob.headers, ticket.uploadId)
        const missing = yield* getUpload(url, bob.headers, "cmnotanuploadid000000000")
        expect(theirs.status).toBe(404)
        expect(theirs.body).toEqual(failure("NOT_FOUND", "Upload not found"))
        expect(missing.status).toBe(404)
        expect(missing.text).toBe(theirs.text)

        // Nor can Bob verify or use it through the service other modules call.
        const service = yield* uploads.service
        expect(yield* Effect.either(service.verify(bob.id, ticket.uploadId))).toEqual(
          Either.left(expect.objectContaining({ _tag: "NotFound", message: "Upload not found" }))
        )
        expect(yield* Effect.either(service.use(bob.id, ticket.uploadId, "session"))).toEqual(
          Either.left(expect.objectContaining({ _tag: "NotFound", message: "Upload not found" }))
        )
        expect(yield* uploadRow(ticket.uploadId)).toMatchObject({ user_id: alice.id, status: "pending" })
      })
    )

    it.effect("bytes that are not the declared format are rejected, with the reason, and deleted", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const jpeg = yield* Effect.promise(() => tinyImage("jpeg"))
        // Declared (and sent) as PNG, but the bytes are a JPEG.
        const ticket = yield* uploaded(url, alice.headers, jpeg, "image/png")
        const res = yield* getUpload(url, alice.headers, ticket.uploadId)
        const message = "The uploaded bytes are a image/jpeg image; image/png was declared"
        expect(res.body).toMatchObject(rejectedAs("UPLOAD_CONTENT_MISMATCH", message))
        const row = yield* uploadRow(ticket.uploadId)
        expect(row).toMatchObject({ status: "rejected", rejection_code: "UPLOAD_CONTENT_MISMATCH" })
        expect(existsSync(objectFile(String(row?.["key"])))).toBe(false)

        const noise = randomNoise(2048)
        const other = yield* uploaded(url, alice.headers, noise, "image/webp")
        expect((yield* getUpload(url, alice.headers, other.uploadId)).body).toMatchObject(
          rejectedAs(
            "UPLOAD_CONTENT_MISMATCH",
            "The uploaded bytes are not a PNG, JPEG or WebP image; image/webp was declared"
          )
        )
        const service = yield* uploads.service
        expect(yield* Effect.either(service.verify(alice.id, ticket.uploadId))).toEqual(
          Either.left(expect.objectContaining({ _tag: "UploadContentMismatch", message }))
        )
      })
    )

    it.effect("a pending upload whose URL expired shows as expired and cannot be used", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const ticket = yield* ticketFor(url, alice.headers, yield* Effect.promise(() => tinyImage("png")))
        yield* sql("UPDATE uploads SET expires_at = now() - interval '1 minute' WHERE id = $1", [ticket.uploadId])
        expect((yield* getUpload(url, alice.headers, ticket.uploadId)).body).toMatchObject({
          data: { status: "expired" }
        })
        const service = yield* uploads.service
        expect(yield* Effect.either(service.verify(alice.id, ticket.uploadId))).toEqual(
          Either.left(
            expect.objectContaining({
              _tag: "UploadExpired",
              message: "The upload URL expired before the image was uploaded: start a new upload"
            })
          )
        )
      })
    )
  })

  describe("UploadsService (what sessions and openers call)", () => {
    it.effect("verify refuses what has not arrived; use takes a verified upload once, for its purpose", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const service = yield* uploads.service
        const png = yield* Effect.promise(() => tinyImage("png"))
        const ticket = yield* ticketFor(url, alice.headers, png)

        expect(yield* Effect.either(service.verify(alice.id, ticket.uploadId))).toEqual(
          Either.left(
            expect.objectContaining({
              _tag: "UploadNotReceived",
              message: "The image has not been uploaded yet: PUT it to the upload URL first"
            })
          )
        )
        yield* sendBytes(ticket, png)
        const [row] = yield* uploadRows(alice.id)
        const verified = {
          id: ticket.uploadId,
          userId: alice.id,
          key: row?.["key"],
          purpose: "session",
          contentType: "image/png",
          contentLength: png.length
        }
        expect(yield* service.verify(alice.id, ticket.uploadId)).toEqual(verified)
        expect(yield* Effect.either(service.use(alice.id, ticket.uploadId, "profile"))).toEqual(
          Either.left(
            expect.objectContaining({
              _tag: "UploadPurposeMismatch",
              message: "This upload was declared for session, not profile"
            })
          )
        )
        expect(yield* service.use(alice.id, ticket.uploadId, "session")).toEqual(verified)
        expect(yield* Effect.either(service.use(alice.id, ticket.uploadId, "session"))).toEqual(
          Either.left(
            expect.objectContaining({
              _tag: "UploadAlreadyUsed",
              message: "This upload was already used: upload the image again"
            })
          )
        )
        expect((yield* getUpload(url, alice.headers, ticket.uploadId)).body).toMatchObject({
          data: { status: "used" }
        })
        expect(yield* uploadRow(ticket.uploadId)).toMatchObject({ status: "used", used_at: expect.any(Date) })
      })
    )

    it.effect("process: oriented, GPS gone, resized, thumbnail, hash; stored next to the original, once", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const service = yield* uploads.service
        const photo = yield* Effect.promise(orientedJpegWithGps)
        const ticket = yield* uploaded(url, alice.headers, photo, "image/jpeg")
        yield* service.use(alice.id, ticket.uploadId, "session")

        const processed = yield* service.process(alice.id, ticket.uploadId)
        const row = yield* uploadRow(ticket.uploadId)
        const key = String(row?.["key"])
        expect(processed).toEqual({
          uploadId: ticket.uploadId,
          imageKey: `${key}.webp`,
          thumbnailKey: `${key}.thumb.webp`,
          contentHash: expect.stringMatching(/^[0-9a-f]{64}$/),
          width: 200,
          height: 400
        })
        expect(row).toMatchObject({
          status: "used",
          image_key: `${key}.webp`,
          thumbnail_key: `${key}.thumb.webp`,
          content_hash: processed.contentHash,
          width: 200,
          height: 400,
          processed_at: expect.any(Date)
        })
        const image = readFileSync(objectFile(processed.imageKey))
        const metadata = yield* Effect.promise(() => sharp(image).metadata())
        expect([metadata.format, metadata.width, metadata.height, metadata.exif]).toEqual(["webp", 200, 400, undefined])
        expect(image.includes(Buffer.from(GPS_MARKER))).toBe(false)
        expect(existsSync(objectFile(processed.thumbnailKey))).toBe(true)

        // Done once: a second call answers the record.
        expect(yield* service.process(alice.id, ticket.uploadId)).toEqual(processed)
      })
    )

    it.effect("process refuses a PNG bomb from its header and a truncated PNG, with their codes", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const service = yield* uploads.service
        const bomb = yield* uploaded(url, alice.headers, pngBomb(16_000, 16_000))
        expect(yield* Effect.either(service.process(alice.id, bomb.uploadId))).toEqual(
          Either.left(
            expect.objectContaining({
              _tag: "ImageTooLarge",
              message: "The image is 16000×16000 pixels; at most 40000000 pixels are accepted"
            })
          )
        )
        const truncated = yield* uploaded(url, alice.headers, yield* Effect.promise(truncatedPng))
        expect(yield* Effect.either(service.process(alice.id, truncated.uploadId))).toEqual(
          Either.left(
            expect.objectContaining({
              _tag: "ImageUnreadable",
              message: "The image cannot be decoded: it is corrupt, truncated or not a PNG, JPEG or WebP image"
            })
          )
        )
        expect(yield* uploadRows(alice.id)).toEqual([
          expect.objectContaining({ status: "verified", image_key: null }),
          expect.objectContaining({ status: "verified", image_key: null })
        ])
      })
    )

    it.effect("the sweep deletes uploads unused past the retention, rows and files; used ones stay", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const service = yield* uploads.service
        const png = yield* Effect.promise(() => tinyImage("png"))
        const kept = yield* uploaded(url, alice.headers, png)
        yield* service.use(alice.id, kept.uploadId, "session")
        const stale = yield* uploaded(url, alice.headers, png)
        yield* service.process(alice.id, stale.uploadId)
        const abandoned = yield* ticketFor(url, alice.headers, png)
        const fresh = yield* uploaded(url, alice.headers, png)
        yield* sql("UPDATE uploads SET created_at = now() - interval '2 days' WHERE id = ANY($1)", [
          [kept.uploadId, stale.uploadId, abandoned.uploadId]
        ])
        expect(filesUnder(alice.id)).toHaveLength(5)

        const removed = yield* service.sweep
        expect(removed).toBeGreaterThanOrEqual(2)
        const rows = yield* uploadRows(alice.id)
        expect(rows.map((row) => row["id"]).sort()).toEqual([kept.uploadId, fresh.uploadId].sort())
        const keys = rows.map((row) => String(row["key"]).split("/").at(-1)).sort()
        expect(filesUnder(alice.id)).toEqual(keys.map((name) => join("uploads", name ?? "")).sort())
        expect((yield* getUpload(url, alice.headers, stale.uploadId)).status).toBe(404)
      })
    )
  })

  describe("the stray sweep", () => {
    it.effect("removes objects under users/ no upload refers to, however recent; others stay", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const service = yield* uploads.service
        const png = yield* Effect.promise(() => tinyImage("png"))
        const known = yield* uploaded(url, alice.headers, png)
        const [row] = yield* uploadRows(alice.id)
        const knownKey = String(row?.["key"])
        // Objects that landed without a row: a URL replayed after its upload was swept, a leftover.
        const strayAt = (name: string, ageSeconds: number) => {
          const file = objectFile(`users/${alice.id}/uploads/${name}`)
          mkdirSync(dirname(file), { recursive: true })
          writeFileSync(file, png)
          const at = new Date(Date.now() - ageSeconds * 1000)
          utimesSync(file, at, at)
          return file
        }
        const old = strayAt("stray-old", 3600)
        const fresh = strayAt("stray-fresh", 0)

        yield* service.sweep
        expect(existsSync(old)).toBe(false)
        // No upload in flight (its row is written before its URL is handed out): a late PUT, a leftover.
        expect(existsSync(fresh)).toBe(false)
        expect(existsSync(objectFile(knownKey))).toBe(true)
        expect((yield* getUpload(url, alice.headers, known.uploadId)).body).toMatchObject({
          data: { status: "verified" }
        })
      })
    )
  })

  describe("erasure", () => {
    it.effect("DELETE /users/me removes the user's objects (originals and derived) and rows; others' stay", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice, bob } = yield* twoUsers(url)
        const service = yield* uploads.service
        const png = yield* Effect.promise(() => tinyImage("png"))
        const processed = yield* uploaded(url, alice.headers, png)
        yield* service.process(alice.id, processed.uploadId)
        yield* uploaded(url, alice.headers, png)
        yield* ticketFor(url, alice.headers, png)
        yield* uploaded(url, bob.headers, png)
        expect(filesUnder(alice.id)).toHaveLength(4)
        const bobFiles = filesUnder(bob.id)
        expect(bobFiles).toHaveLength(1)

        const erased = yield* http(`${url}/api/v1/users/me`, { method: "DELETE", headers: alice.headers })
        expect(erased.status).toBe(204)
        expect(existsSync(join(root, "objects", "users", alice.id))).toBe(false)
        expect(existsSync(join(root, "meta", "users", alice.id))).toBe(false)
        expect(yield* uploadRows(alice.id)).toEqual([])
        expect(filesUnder(bob.id)).toEqual(bobFiles)
        expect(yield* uploadRows(bob.id)).toHaveLength(1)
      })
    )
  })
})
