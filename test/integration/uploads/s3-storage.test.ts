/**
 * The S3 storage layer through the real AWS SDK against an S3-compatible server (s3rver) started
 * here: pre-signed PUTs performed with plain fetch, head, ranges, deletes by prefix; then the
 * whole upload flow of the API on it, and erasure.
 */
import { expect, layer } from "@effect/vitest"
import { CreateBucketCommand, DeleteBucketCommand, S3Client } from "@aws-sdk/client-s3"
import { Cause, Effect, Exit, Layer, Option } from "effect"
import { Storage } from "../../../src/core/storage/storage.ts"
import { S3Fake, s3Options } from "../../fakes/s3/s3.ts"
import { TestDb, sql } from "../../support/database.ts"
import { http } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { exposeUploadsService, getUpload, rejectedAs, sendBytes, ticketFor } from "../../support/uploads.ts"
import { twoUsers } from "../../support/users.ts"
import { tinyImage } from "../../fixtures/images.ts"

const uploads = exposeUploadsService()

const Server = testServer({
  db: TestDb(),
  storage: Layer.unwrapEffect(Effect.map(S3Fake, (fake) => fake.storage)),
  routes: uploads.layer
}).pipe(Layer.provideMerge(S3Fake.layer()))

/** Runs `use` with a Storage of its own on the fake's bucket (the SDK, not the API). */
const withStorage = <A, E>(use: Effect.Effect<A, E, Storage>) =>
  Effect.flatMap(S3Fake, (fake) => Effect.provide(use, fake.storage))

/** Which of `keys` exist in the bucket. */
const existing = (keys: ReadonlyArray<string>) =>
  Effect.flatMap(Storage, (storage) => Effect.filter(keys, (key) => Effect.map(storage.head(key), Option.isSome)))

const NAMES = ["a", "b", "c", "d", "e", "nested/f", "uploads/g"]
const keysUnder = (prefix: string) => existing(NAMES.map((name) => `${prefix}${name}`))

layer(Server, { timeout: 60_000 })("S3 storage (s3rver, real SDK)", (it) => {
  it.effect("a pre-signed PUT signs Content-Type and Content-Length and works with plain fetch", () =>
    Effect.gen(function* () {
      const fake = yield* S3Fake
      const png = yield* Effect.promise(() => tinyImage("png"))
      yield* withStorage(
        Effect.gen(function* () {
          const storage = yield* Storage
          expect(storage.driver).toBe("s3")
          const before = Date.now()
          const signed = yield* storage.signUpload({
            key: "users/u1/uploads/shot",
            contentType: "image/png",
            contentLength: png.length,
            expiresInSeconds: 300
          })
          expect(signed.method).toBe("PUT")
          expect(signed.headers).toEqual({
            "Content-Type": "image/png",
            "Content-Length": String(png.length),
            "If-None-Match": "*"
          })
          expect(signed.expiresAt.getTime() - before).toBeGreaterThanOrEqual(299_000)
          const url = new URL(signed.url)
          expect(`${url.origin}${url.pathname}`).toBe(`${fake.endpoint}/${fake.bucket}/users/u1/uploads/shot`)
          expect(url.searchParams.get("X-Amz-SignedHeaders")).toBe("content-length;content-type;host;if-none-match")
          expect(url.searchParams.get("X-Amz-Expires")).toBe("300")
          // No checksum the app would have to compute (R2 and the app know nothing of it).
          expect([...url.searchParams.keys()].filter((name) => /checksum/i.test(name))).toEqual([])

          const put = yield* sendBytes({ ...signed, uploadId: "", expiresAt: "" }, png)
          expect(put.status).toBe(200)
          expect(yield* storage.head("users/u1/uploads/shot")).toEqual(
            Option.some({ size: png.length, contentType: "image/png", lastModified: expect.any(Date) })
          )
          expect(yield* storage.get("users/u1/uploads/shot", { start: 0, end: 7 })).toEqual(
            Option.some(new Uint8Array(png.subarray(0, 8)))
          )
          expect(yield* storage.get("users/u1/uploads/shot")).toEqual(Option.some(new Uint8Array(png)))

          const download = yield* storage.signDownload("users/u1/uploads/shot", 60)
          const fetched = yield* Effect.promise(() =>
            fetch(download.url).then(async (res) => ({
              body: await res.arrayBuffer(),
              cacheControl: res.headers.get("cache-control")
            }))
          )
          expect(Buffer.from(fetched.body)).toEqual(png)
          // Signed into the URL: the store answers that no cache may keep the image.
          expect(fetched.cacheControl).toBe("private, no-store")

          expect(yield* storage.head("users/u1/uploads/missing")).toEqual(Option.none())
          expect(yield* storage.get("users/u1/uploads/missing")).toEqual(Option.none())
        })
      )
    })
  )

  it.effect("a bucket that does not exist fails the layer at boot, with the bucket's name", () =>
    Effect.gen(function* () {
      const fake = yield* S3Fake
      const exit = yield* Effect.exit(Effect.provide(Storage, Storage.s3(s3Options(fake.endpoint, "no-such-bucket"))))
      expect(exit._tag).toBe("Failure")
      const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
      expect(Option.map(error, (e) => [e.operation, String(e.cause)])).toEqual(
        Option.some(["s3.headBucket", "Error: S3 bucket no-such-bucket does not exist"])
      )
    })
  )

  it.effect("a bucket gone after boot: a read is a StorageError, not a missing object", () =>
    Effect.gen(function* () {
      const fake = yield* S3Fake
      const options = s3Options(fake.endpoint, "gone-later")
      const admin = new S3Client({
        region: options.region,
        endpoint: fake.endpoint,
        forcePathStyle: true,
        credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" }
      })
      yield* Effect.promise(() => admin.send(new CreateBucketCommand({ Bucket: "gone-later" })))
      const read = yield* Effect.gen(function* () {
        const storage = yield* Storage
        yield* Effect.promise(() => admin.send(new DeleteBucketCommand({ Bucket: "gone-later" })))
        return yield* Effect.exit(storage.get("users/u1/uploads/shot"))
      }).pipe(Effect.provide(Storage.s3(options)))
      admin.destroy()
      expect(Exit.isFailure(read) ? Option.map(Cause.failureOption(read.cause), (e) => e._tag) : "read").toEqual(
        Option.some("StorageError")
      )
    })
  )

  it.effect("delete by prefix removes exactly the objects under it; deleting missing keys is no error", () =>
    withStorage(
      Effect.gen(function* () {
        const storage = yield* Storage
        for (const name of NAMES) {
          yield* storage.put(`users/erase-me/${name}`, new Uint8Array([1, 2, 3]), "image/png")
        }
        yield* storage.put("users/erase-me-not/a", new Uint8Array([1]), "image/png")
        expect(yield* keysUnder("users/erase-me/")).toHaveLength(7)

        expect(yield* storage.removePrefix("users/erase-me/")).toBe(7)
        expect(yield* keysUnder("users/erase-me/")).toEqual([])
        expect(yield* keysUnder("users/erase-me-not/")).toEqual(["users/erase-me-not/a"])
        expect(yield* storage.removePrefix("users/erase-me/")).toBe(0)

        yield* storage.remove(["users/erase-me-not/a", "users/never-was"])
        yield* storage.remove([])
        expect(yield* keysUnder("users/erase-me-not/")).toEqual([])
      })
    )
  )

  it.effect(
    "a key the store refuses (HTTP 200, a per-key error) fails the deletion, after every other key of every batch and page went",
    () =>
      Effect.gen(function* () {
        const fake = yield* S3Fake
        const names = (prefix: string) =>
          Array.from({ length: 1500 }, (_, index) => `${prefix}${String(index).padStart(4, "0")}`)
        const listed = names("users/refused-list/")
        const prefixed = names("users/refused-prefix/")
        yield* fake.put(
          [...listed, ...prefixed].map((key) => ({ key, body: new Uint8Array([1]), contentType: "image/png" }))
        )
        yield* fake.refuseDeletes([listed[0] ?? "", prefixed[0] ?? ""])
        yield* withStorage(
          Effect.gen(function* () {
            const storage = yield* Storage
            // Two DeleteObjects batches (at most 1000 keys each): the second is sent although the first failed.
            const removed = yield* Effect.either(storage.remove(listed))
            expect(removed).toMatchObject({ _tag: "Left", left: { _tag: "StorageError" } })
            expect(yield* fake.keys("users/refused-list/")).toEqual([listed[0]])
            // Two listing pages: the second is emptied although the first's deletion failed.
            const emptied = yield* Effect.either(storage.removePrefix("users/refused-prefix/"))
            expect(emptied).toMatchObject({ _tag: "Left", left: { _tag: "StorageError" } })
            expect(yield* fake.keys("users/refused-prefix/")).toEqual([prefixed[0]])
          })
        )
        yield* fake.allowDeletes
        yield* withStorage(Effect.flatMap(Storage, (storage) => storage.removePrefix("users/refused-")))
        expect(yield* fake.keys("users/refused-")).toEqual([])
      }),
    60_000
  )

  it.effect("the API's upload flow on S3: POST, PUT with fetch to the returned URL, then verified", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const fake = yield* S3Fake
      const { alice } = yield* twoUsers(url)
      const png = yield* Effect.promise(() => tinyImage("png"))
      const ticket = yield* ticketFor(url, alice.headers, png)
      expect(ticket.url.startsWith(`${fake.endpoint}/${fake.bucket}/users/${alice.id}/uploads/`)).toBe(true)
      expect((yield* getUpload(url, alice.headers, ticket.uploadId)).body).toMatchObject({
        data: { status: "pending" }
      })

      const put = yield* sendBytes(ticket, png)
      expect(put.status).toBe(200)
      const res = yield* getUpload(url, alice.headers, ticket.uploadId)
      expect(res.status).toBe(200)
      expect(res.body).toMatchObject({
        success: true,
        data: { id: ticket.uploadId, status: "verified", contentLength: png.length, rejection: null }
      })

      // The local storage's routes are not mounted on S3.
      const local = yield* http(`${url}/storage/users/${alice.id}/uploads/x`, { method: "PUT", body: "x" })
      expect(local.status).toBe(404)
      expect(local.body).toMatchObject({ error: { code: "ROUTE_NOT_FOUND" } })
    })
  )

  it.effect("what a store that skips signatures let through is rejected: another size, another type", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const png = yield* Effect.promise(() => tinyImage("png"))

      const sized = yield* ticketFor(url, alice.headers, png)
      const bigger = Buffer.concat([png, Buffer.alloc(10)])
      yield* sendBytes(sized, bigger, { "Content-Length": String(bigger.length) })
      expect((yield* getUpload(url, alice.headers, sized.uploadId)).body).toMatchObject(
        rejectedAs("UPLOAD_SIZE_MISMATCH", `The uploaded object is ${bigger.length} bytes; ${png.length} were declared`)
      )

      const typed = yield* ticketFor(url, alice.headers, png)
      yield* sendBytes(typed, png, { "Content-Type": "text/html" })
      expect((yield* getUpload(url, alice.headers, typed.uploadId)).body).toMatchObject(
        rejectedAs("UPLOAD_TYPE_MISMATCH", "The uploaded object is stored as text/html; image/png was declared")
      )
      // Rejected objects are deleted at once.
      const rows = yield* sql("SELECT key FROM uploads WHERE user_id = $1", [alice.id])
      for (const row of rows) {
        expect(yield* withStorage(Effect.flatMap(Storage, (storage) => storage.head(String(row["key"]))))).toEqual(
          Option.none()
        )
      }
    })
  )

  it.effect("an upload URL takes one PUT: the store refuses a second one (412) and the verified bytes stay", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const png = yield* Effect.promise(() => tinyImage("png"))
      const ticket = yield* ticketFor(url, alice.headers, png)
      // The condition is signed: a client cannot drop it without breaking the signature.
      expect(new URL(ticket.url).searchParams.get("X-Amz-SignedHeaders")).toContain("if-none-match")
      expect(ticket.headers["If-None-Match"]).toBe("*")
      expect((yield* sendBytes(ticket, png)).status).toBe(200)
      expect((yield* getUpload(url, alice.headers, ticket.uploadId)).body).toMatchObject({
        data: { status: "verified" }
      })

      const junk = Buffer.alloc(png.length, 7)
      const again = yield* sendBytes(ticket, junk)
      expect(again.status).toBe(412)
      expect(again.text).toContain("<Code>PreconditionFailed</Code>")
      const [row] = yield* sql("SELECT key FROM uploads WHERE id = $1", [ticket.uploadId])
      const stored = yield* withStorage(Effect.flatMap(Storage, (storage) => storage.get(String(row?.["key"]))))
      expect(stored).toEqual(Option.some(new Uint8Array(png)))
    })
  )

  it.effect("a PUT after the original was deleted lands (S3 cannot revoke a URL) and the sweep removes it", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const service = yield* uploads.service
      const png = yield* Effect.promise(() => tinyImage("png"))
      const ticket = yield* ticketFor(url, alice.headers, png)
      expect((yield* sendBytes(ticket, png)).status).toBe(200)
      yield* service.use(alice.id, ticket.uploadId, "session")
      const [row] = yield* sql("SELECT key FROM uploads WHERE id = $1", [ticket.uploadId])
      const key = String(row?.["key"])
      // What the sessions pipeline does once OCR succeeded: the original goes.
      yield* withStorage(Effect.flatMap(Storage, (storage) => storage.remove([key])))
      // The object was verified (its last-modified time recorded) earlier than this second; S3's
      // times are whole seconds, so the test dates the verification back instead of waiting.
      yield* sql("UPDATE uploads SET stored_at = stored_at - interval '5 seconds' WHERE id = $1", [ticket.uploadId])

      expect((yield* sendBytes(ticket, png)).status).toBe(200)
      expect(yield* withStorage(existing([key]))).toEqual([key])
      yield* service.sweep
      expect(yield* withStorage(existing([key]))).toEqual([])
    })
  )

  it.effect("a ticket used after erasure writes (S3 cannot revoke it); a second DELETE /users/me removes it", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const png = yield* Effect.promise(() => tinyImage("png"))
      const ticket = yield* ticketFor(url, alice.headers, png)
      const key = decodeURIComponent(new URL(ticket.url).pathname).replace(/^\/[^/]+\//, "")
      const erase = http(`${url}/api/v1/users/me`, { method: "DELETE", headers: alice.headers })
      expect((yield* erase).status).toBe(204)
      expect((yield* sendBytes(ticket, png)).status).toBe(200)
      expect(yield* withStorage(existing([key]))).toEqual([key])

      // The user row is gone: the second erasure works from the tombstone.
      expect((yield* erase).status).toBe(204)
      expect(yield* withStorage(existing([key]))).toEqual([])
    })
  )

  it.effect("erasure deletes the user's objects from the bucket, and only theirs", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice, bob } = yield* twoUsers(url)
      const png = yield* Effect.promise(() => tinyImage("png"))
      for (const user of [alice, alice, bob]) {
        yield* sendBytes(yield* ticketFor(url, user.headers, png), png)
      }
      const keysOf = (userId: string) =>
        Effect.map(sql("SELECT key FROM uploads WHERE user_id = $1", [userId]), (rows) =>
          rows.map((row) => String(row["key"]))
        )
      const aliceKeys = yield* keysOf(alice.id)
      const bobKeys = yield* keysOf(bob.id)
      const present = (keys: ReadonlyArray<string>) => withStorage(existing(keys))
      expect(yield* present(aliceKeys)).toHaveLength(2)

      const erased = yield* http(`${url}/api/v1/users/me`, { method: "DELETE", headers: alice.headers })
      expect(erased.status).toBe(204)
      expect(yield* present(aliceKeys)).toEqual([])
      expect(yield* keysOf(alice.id)).toEqual([])
      expect(yield* present(bobKeys)).toEqual(bobKeys)
    })
  )
})
