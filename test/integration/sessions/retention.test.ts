/**
 * SESSION_SCREENSHOT_RETENTION_SECONDS: 0 (default) deletes a session's full-size screenshots
 * (originals and normalised images) right after OCR succeeded; > 0 keeps them until
 * `originals_expire_at`, then the sessions sweeper deletes them. Only the thumbnail stays with the
 * session: its owner gets it as a short-lived signed URL (SESSION_THUMBNAIL_URL_TTL_SECONDS), and
 * it goes with the session. On local storage, and on S3 (the S3 fake through the real SDK; what
 * the bucket holds read from s3rver's files).
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll } from "vitest"
import { S3Fake } from "../../fakes/s3/s3.ts"
import { assertFontsRender, chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { sql, TestDb } from "../../support/database.ts"
import { http } from "../../support/http.ts"
import { baseUrl, localTestStorage, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { eventually } from "../openers/support.ts"
import { awaitFinished, createSession, getSession, uploadPng, type WireSession } from "./support.ts"

let screenshot: Buffer
beforeAll(async () => {
  await assertFontsRender()
  screenshot = await chatScreenshotPng()
})

const immediateRoot = mkdtempSync(join(tmpdir(), "wm-retention-"))
const retainedRoot = mkdtempSync(join(tmpdir(), "wm-retention-"))
afterAll(() => {
  for (const root of [immediateRoot, retainedRoot]) rmSync(root, { recursive: true, force: true })
})

const objectPath = (root: string, key: string) => join(root, "objects", ...key.split("/"))

/** A completed session: its id and the keys of its original, normalised image and thumbnail. */
const completed = (url: string, headers: Record<string, string>) =>
  Effect.gen(function* () {
    const uploadId = yield* uploadPng(url, headers, screenshot)
    const created = yield* createSession(url, headers, { uploadIds: [uploadId] })
    const done = yield* awaitFinished(url, headers, (created.body as { data: WireSession }).data.id)
    expect(done.status).toBe("completed")
    const [keys] = yield* sql<{ original: string; image: string; thumbnail: string }>(
      `SELECT u.key AS original, si.image_key AS image, si.thumbnail_key AS thumbnail
         FROM session_images si JOIN uploads u ON u.id = si.upload_id WHERE si.session_id = $1`,
      [done.id]
    )
    if (keys === undefined) return yield* Effect.dieMessage("no image row")
    return { id: done.id, keys }
  })

const expiry = (id: string) =>
  Effect.map(
    sql<{ at: Date | null }>("SELECT originals_expire_at AS at FROM sessions WHERE id = $1", [id]),
    (rows) => rows[0]?.at ?? null
  )

/** The thumbnail URLs' life in the first server: short, so the test sees one expire. */
const THUMBNAIL_TTL_SECONDS = 2

interface WireImage {
  readonly position: number
  readonly thumbnail: { readonly url: string; readonly expiresAt: string } | null
}

layer(
  testServer({
    db: TestDb(),
    consumer: true,
    storage: localTestStorage({ root: immediateRoot }),
    config: { SESSION_THUMBNAIL_URL_TTL_SECONDS: String(THUMBNAIL_TTL_SECONDS) }
  }),
  { timeout: 120_000 }
)("sessions: screenshot retention 0 (default)", (it) => {
  it.effect("the original and the normalised image are deleted once OCR succeeded; the thumbnail stays", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const root = immediateRoot
      const { id, keys } = yield* completed(url, alice.headers)
      expect(existsSync(objectPath(root, keys.original))).toBe(false)
      expect(existsSync(objectPath(root, keys.image))).toBe(false)
      expect(existsSync(objectPath(root, keys.thumbnail))).toBe(true)
      expect(yield* expiry(id)).toBeNull()
    })
  )

  it.effect("the owner's view signs the thumbnail for a short while; others get 404; DELETE removes it", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice, bob } = yield* twoUsers(url)
      const { id, keys } = yield* completed(url, alice.headers)

      const viewed = yield* getSession(url, alice.headers, id)
      expect(viewed.status).toBe(200)
      expect(viewed.headers.get("cache-control")).toContain("no-store")
      const images = (viewed.body as { data: { images: ReadonlyArray<WireImage> } }).data.images
      expect(images).toHaveLength(1)
      const thumbnail = images[0]?.thumbnail
      if (thumbnail === null || thumbnail === undefined) return yield* Effect.dieMessage("no thumbnail URL")
      expect(thumbnail.url).not.toContain(keys.original + "?")
      expect(thumbnail.url).not.toContain(keys.image + "?")
      expect(new Date(thumbnail.expiresAt).getTime()).toBeLessThanOrEqual(Date.now() + THUMBNAIL_TTL_SECONDS * 1000)

      // The URL answers the thumbnail's bytes, not to be cached anywhere.
      const fetched = yield* Effect.promise(async () => {
        const response = await fetch(thumbnail.url)
        return {
          status: response.status,
          type: response.headers.get("content-type"),
          cache: response.headers.get("cache-control"),
          bytes: Buffer.from(await response.arrayBuffer())
        }
      })
      expect(fetched.status).toBe(200)
      expect(fetched.type).toMatch(/^image\//)
      expect(fetched.cache).toContain("private")
      expect(fetched.cache).toContain("no-store")
      expect(fetched.bytes.equals(readFileSync(objectPath(immediateRoot, keys.thumbnail)))).toBe(true)

      // Someone else's session does not exist for them.
      const foreign = yield* getSession(url, bob.headers, id)
      expect(foreign.status).toBe(404)
      expect(foreign.text).not.toContain("/storage/")

      // The URL expires (waits for it; the test's timeout is the bound).
      const later = yield* eventually(
        http(thumbnail.url),
        (result) => result.status !== 200,
        "the thumbnail URL to expire",
        100
      )
      expect(later.status).toBe(403)
      expect(later.body).toMatchObject({ success: false, error: { code: "URL_EXPIRED" } })

      // The thumbnail goes with the session.
      const deleted = yield* http(`${url}/api/v1/sessions/${id}`, { method: "DELETE", headers: alice.headers })
      expect(deleted.status).toBe(204)
      expect(existsSync(objectPath(immediateRoot, keys.thumbnail))).toBe(false)
    })
  )
})

layer(
  testServer({
    db: TestDb(),
    consumer: true,
    storage: localTestStorage({ root: retainedRoot }),
    config: { SESSION_SCREENSHOT_RETENTION_SECONDS: "3600", UPLOAD_SWEEP_INTERVAL_SECONDS: "1" }
  }),
  { timeout: 120_000 }
)("sessions: screenshot retention > 0", (it) => {
  it.effect("the original and normalised image are kept until their expiry, then the sweeper deletes them", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const root = retainedRoot
      const { id, keys } = yield* completed(url, alice.headers)
      const at = yield* expiry(id)
      expect(at).toBeInstanceOf(Date)
      expect(existsSync(objectPath(root, keys.original))).toBe(true)
      expect(existsSync(objectPath(root, keys.image))).toBe(true)

      // Its retention is over: the next sweep deletes it and clears the expiry.
      yield* sql("UPDATE sessions SET originals_expire_at = now() - interval '1 second' WHERE id = $1", [id])
      const cleared = yield* eventually(expiry(id), (value) => value === null, "the expiry to be cleared")
      expect(cleared).toBeNull()
      expect(existsSync(objectPath(root, keys.original))).toBe(false)
      expect(existsSync(objectPath(root, keys.image))).toBe(false)
      expect(existsSync(objectPath(root, keys.thumbnail))).toBe(true)
    })
  )
})

/** Which of an upload's objects the bucket holds (read from the fake's files, not through the app). */
const inBucket = (keys: { original: string; image: string; thumbnail: string }) =>
  Effect.map(S3Fake, (fake) => fake.keys(keys.original)).pipe(
    Effect.flatten,
    Effect.map((held) => ({
      original: held.includes(keys.original),
      image: held.includes(keys.image),
      thumbnail: held.includes(keys.thumbnail),
      others: held.filter((key) => ![keys.original, keys.image, keys.thumbnail].includes(key))
    }))
  )

const onS3 = (config: Record<string, string>) =>
  testServer({
    db: TestDb(),
    consumer: true,
    storage: Layer.unwrapEffect(Effect.map(S3Fake, (fake) => fake.storage)),
    config
  }).pipe(Layer.provideMerge(S3Fake.layer()))

layer(onS3({ SESSION_THUMBNAIL_URL_TTL_SECONDS: String(THUMBNAIL_TTL_SECONDS) }), { timeout: 120_000 })(
  "sessions: screenshot retention 0 (default), on S3",
  (it) => {
    it.effect(
      "the full-size copies leave the bucket once OCR succeeded; the thumbnail is served, then goes with the session",
      () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const { alice } = yield* twoUsers(url)
          const { id, keys } = yield* completed(url, alice.headers)
          expect(yield* inBucket(keys)).toEqual({ original: false, image: false, thumbnail: true, others: [] })
          expect(yield* expiry(id)).toBeNull()

          const viewed = yield* getSession(url, alice.headers, id)
          const images = (viewed.body as { data: { images: ReadonlyArray<WireImage> } }).data.images
          const thumbnail = images[0]?.thumbnail
          if (thumbnail === null || thumbnail === undefined) return yield* Effect.dieMessage("no thumbnail URL")
          const fetched = yield* Effect.promise(async () => {
            const response = await fetch(thumbnail.url)
            return { status: response.status, cache: response.headers.get("cache-control") }
          })
          expect(fetched).toEqual({ status: 200, cache: "private, no-store" })

          const deleted = yield* http(`${url}/api/v1/sessions/${id}`, { method: "DELETE", headers: alice.headers })
          expect(deleted.status).toBe(204)
          expect(yield* inBucket(keys)).toEqual({ original: false, image: false, thumbnail: false, others: [] })
          expect((yield* Effect.promise(() => fetch(thumbnail.url))).status).toBe(404)
        })
    )
  }
)

layer(onS3({ SESSION_SCREENSHOT_RETENTION_SECONDS: "3600", UPLOAD_SWEEP_INTERVAL_SECONDS: "1" }), {
  timeout: 120_000
})("sessions: screenshot retention > 0, on S3", (it) => {
  it.effect(
    "the original and normalised image stay in the bucket until their expiry, then the sweeper deletes them",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const { id, keys } = yield* completed(url, alice.headers)
        expect(yield* expiry(id)).toBeInstanceOf(Date)
        expect(yield* inBucket(keys)).toEqual({ original: true, image: true, thumbnail: true, others: [] })

        yield* sql("UPDATE sessions SET originals_expire_at = now() - interval '1 second' WHERE id = $1", [id])
        expect(yield* eventually(expiry(id), (value) => value === null, "the expiry to be cleared")).toBeNull()
        expect(yield* inBucket(keys)).toEqual({ original: false, image: false, thumbnail: true, others: [] })
      })
  )
})
