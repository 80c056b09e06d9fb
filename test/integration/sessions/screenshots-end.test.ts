/**
 * No full-size copy of a screenshot outlives its session's end, however it ends (README, Privacy),
 * on local storage and on S3 (the S3 wire fake, through the real AWS SDK); what each store holds is
 * read from the store itself (the files on disk; s3rver's files behind the fake),
 * never through the app's storage:
 * - completed: only the thumbnail stays;
 * - the deletion after the transcript's save fails: the upload sweep deletes them, the session
 *   having ended; the attempt dies right there (a worker killed): the retry, which finds the
 *   transcript saved, deletes them;
 * - the session is deleted while its image is being normalised (the write held until the delete
 *   answered, as by a worker that has not yet seen the cancel): no object, no upload row;
 * - a session upload left by a deletion before uploads went with their session: the sweep deletes
 *   its objects and row;
 * - an unreadable image fails the session, a cancel during OCR cancels it: the original and the
 *   normalised image are gone at once; a cancelled session keeps its thumbnail, as a completed one;
 * - the account is erased, with a session done and one being normalised: nothing under its prefix;
 * - deleted, the objects' deletion failing: the next sweep deletes them;
 * - objects no upload row refers to (what a crash leaves): the next sweep deletes them; a normalised
 *   image its live upload does not record (maybe being processed) once older than the URL TTL;
 * - the upload URL used again after the session ended or was deleted (S3 cannot revoke a URL; the
 *   local store refuses a second PUT): the next sweep deletes what lands.
 * On S3 only: DeleteObjects answering HTTP 200 with a per-key error is a failed deletion, not a
 * success: the sweep deletes the object, and keeps the row it would have deleted after it; one key
 * the store keeps refusing (a policy, an object lock) stops neither the pages of the sweep after it
 * nor the sweep of other users' screenshots; the sweep and erasure page through more than 1000 keys
 * (ListObjectsV2's page, DeleteObjects' limit).
 * In-process queue, two attempts, the AI chain at the OpenAI wire fake, storage wrapped to fail or
 * hold chosen operations.
 */
import { expect, layer } from "@effect/vitest"
import { Context, Deferred, Effect, FiberId, Layer, Queue } from "effect"
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { mkdir, utimes, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join, relative, sep } from "node:path"
import { afterAll, beforeEach } from "vitest"
import type { HttpServer } from "@effect/platform"
import type { AppConfig } from "../../../src/core/config.ts"
import { LocalStorageHttp } from "../../../src/core/storage/local.ts"
import { StorageError, type StorageShape } from "../../../src/core/storage/model.ts"
import { Storage } from "../../../src/core/storage/storage.ts"
import { SessionJobs } from "../../../src/modules/sessions/sessions.jobs.ts"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { S3Fake, type S3FakeShape } from "../../fakes/s3/s3.ts"
import { tinyImage, truncatedPng } from "../../fixtures/images.ts"
import { openAiFakeConfig } from "../../support/ai-config.ts"
import { sql, TestDb } from "../../support/database.ts"
import { eventually } from "../../support/eventually.ts"
import { http } from "../../support/http.ts"
import { baseUrl, localTestStorage, testServer } from "../../support/server.ts"
import { exposeUploadsService, sendBytes, type Ticket, ticketFor } from "../../support/uploads.ts"
import { twoUsers } from "../../support/users.ts"
import { awaitFinished, createSession, FAKE_SUGGESTIONS, FAKE_VISION, type WireSession } from "./support.ts"

const openai = await startFakeOpenAI()
afterAll(() => openai.close())
beforeEach(() => openai.reset())
const root = mkdtempSync(join(tmpdir(), "wm-screenshots-end-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))

/** UPLOAD_URL_TTL_SECONDS of both servers: an object no row refers to is a stray once older. */
const URL_TTL_SECONDS = 300

/** What the wrapped storage does to the next operation on an upload's keys (the test sets it). */
const plan: {
  /** The next deletion naming `key`: fails with a StorageError, or dies (the process killed there). */
  removal?: { readonly key: string; readonly how: "fail" | "die" }
  /** The next write of `<key>.webp`: held, uninterruptibly, until `release`; `reached` when it starts, `written` after. */
  hold?: {
    readonly key: string
    readonly reached: Deferred.Deferred<void>
    readonly release: Deferred.Deferred<void>
    readonly written: Deferred.Deferred<void>
  }
} = {}

/** `storage`, failing or holding what `plan` says. */
const gate = (storage: StorageShape): StorageShape => ({
  ...storage,
  remove: (keys) =>
    Effect.suspend(() => {
      const removal = plan.removal
      if (removal === undefined || !keys.includes(removal.key)) return storage.remove(keys)
      delete plan.removal
      return removal.how === "fail"
        ? Effect.fail(new StorageError({ operation: "remove", cause: new Error("refused by the test") }))
        : Effect.dieMessage("the worker was killed here")
    }),
  put: (key, body, contentType) =>
    Effect.suspend(() => {
      const hold = plan.hold
      if (hold === undefined || key !== `${hold.key}.webp`) return storage.put(key, body, contentType)
      delete plan.hold
      return Deferred.succeed(hold.reached, undefined).pipe(
        Effect.zipRight(Deferred.await(hold.release)),
        Effect.zipRight(storage.put(key, body, contentType)),
        Effect.zipRight(Deferred.succeed(hold.written, undefined)),
        Effect.uninterruptible
      )
    })
})

/** The session ids whose job's handler ended (each attempt). */
const handled = Effect.runSync(Queue.unbounded<string>())
const observedJobs = Layer.effect(
  SessionJobs,
  Effect.map(SessionJobs, (jobs) =>
    SessionJobs.of({
      ...jobs,
      consume: (handler, options) =>
        jobs.consume((job) => Effect.ensuring(handler(job), Queue.offer(handled, job.id)), options)
    })
  )
).pipe(Layer.provide(SessionJobs.layer))

/** Waits until the job of `id` has ended an attempt (another session's ends are dropped). */
const attemptEnded = (id: string): Effect.Effect<void> =>
  Effect.flatMap(Queue.take(handled), (ended) => (ended === id ? Effect.void : attemptEnded(id)))

/** The keys of one upload: the original, the normalised image and the thumbnail, as `processWithImage` names them. */
const keysOf = (key: string) => ({ original: key, image: `${key}.webp`, thumbnail: `${key}.thumb.webp` })

const uploadKey = (uploadId: string) =>
  Effect.flatMap(sql<{ key: string }>("SELECT key FROM uploads WHERE id = $1", [uploadId]), (rows) =>
    rows[0] === undefined ? Effect.dieMessage("no upload row") : Effect.succeed(rows[0].key)
  )

/** Waits until every screenshot of session `id` is stored and recorded (their thumbnails' keys on the session's images). */
const thumbnailRecorded = (id: string) =>
  eventually(
    sql<{ thumbnail_key: string | null }>("SELECT thumbnail_key FROM session_images WHERE session_id = $1", [id]),
    (rows) => rows.length > 0 && rows.every((row) => row.thumbnail_key !== null),
    "the screenshot to be stored"
  )

/** A vision answer that writes its first message, then hangs (the model still writing). */
const firstMessageThenHang = {
  ...FAKE_VISION,
  chunks: [
    FAKE_VISION.text.slice(0, FAKE_VISION.text.indexOf('"me:')),
    FAKE_VISION.text.slice(FAKE_VISION.text.indexOf('"me:'))
  ],
  holdAfter: { deltas: 1, until: new Promise<never>(() => {}) }
}

/** The session's view shows its screenshot's thumbnail (a signed link), in status `status`. */
const expectThumbnailShown = (url: string, headers: Record<string, string>, id: string, status: string) =>
  Effect.gen(function* () {
    const view = yield* http(`${url}/api/v1/sessions/${id}`, { headers })
    expect(view.body).toMatchObject({
      data: { status, images: [{ position: 0, thumbnail: { url: expect.any(String) } }] }
    })
  })

/** Cancels session `id` while its screenshot is read: cancelled (200), and the vision call `aborted`. */
const cancelledMidRead = (url: string, headers: Record<string, string>, id: string, aborted: Promise<unknown>) =>
  Effect.gen(function* () {
    const cancelled = yield* http(`${url}/api/v1/sessions/${id}/cancel`, { method: "POST", headers })
    expect(cancelled.status).toBe(200)
    expect(cancelled.body).toMatchObject({ data: { id, status: "cancelled" } })
    yield* Effect.promise(() => aborted)
  })

/** The api and the queue's consumer (in-process queue, two attempts, the AI at the fake) on `storage`, gated. */
const serverOn = <RS>(
  storage: Layer.Layer<Storage, unknown, AppConfig | HttpServer.HttpServer | RS>,
  uploads: ReturnType<typeof exposeUploadsService>
) =>
  testServer({
    db: TestDb(),
    consumer: true,
    storage,
    jobs: observedJobs,
    routes: uploads.layer,
    config: {
      ...openAiFakeConfig(openai.url),
      QUEUE_ATTEMPTS: "2",
      QUEUE_BACKOFF_MS: "0",
      AI_TIMEOUT_MS: "60000",
      UPLOAD_URL_TTL_SECONDS: String(URL_TTL_SECONDS),
      // The test runs the sweep itself.
      UPLOAD_SWEEP_INTERVAL_SECONDS: "3600"
    }
  })

type Server = Layer.Layer<Layer.Layer.Success<ReturnType<typeof serverOn<never>>>, unknown>

/** A store the scenarios run on, and what it holds, read from the store itself. */
interface Backend {
  readonly name: string
  /** The api and the queue's consumer on it. */
  readonly server: Server
  /** One sweep of the uploads (the server's UploadsService). */
  readonly sweep: Effect.Effect<unknown, unknown>
  /** Every key the store holds under `prefix`, in key order. */
  readonly keys: (prefix: string) => Effect.Effect<ReadonlyArray<string>>
  /** Writes an object straight to the store (not through the app's storage). */
  readonly write: (key: string, body: Uint8Array) => Effect.Effect<void>
  /** Sets the object's last-modified time `seconds` back. */
  readonly backdate: (key: string, seconds: number) => Effect.Effect<void>
  /** Whether the store takes a second PUT to an upload URL (S3 cannot refuse one after a deletion). */
  readonly takesLatePuts: boolean
}

const localUploads = exposeUploadsService()

const local: Backend = {
  name: "local storage",
  server: serverOn(
    Layer.effectContext(
      Effect.gen(function* () {
        const storage = yield* Storage
        const localHttp = yield* LocalStorageHttp
        return Context.make(Storage, Storage.of(gate(storage))).pipe(Context.add(LocalStorageHttp, localHttp))
      })
    ).pipe(Layer.provide(localTestStorage({ root }))),
    localUploads
  ),
  sweep: Effect.flatMap(localUploads.service, (service) => service.sweep),
  keys: (prefix) =>
    Effect.sync(() => {
      const objects = join(root, "objects")
      const folder = join(objects, ...prefix.split("/").slice(0, -1))
      if (!existsSync(folder)) return []
      return readdirSync(folder, { recursive: true, withFileTypes: true })
        .filter((entry) => entry.isFile())
        .map((entry) => relative(objects, join(entry.parentPath, entry.name)).split(sep).join("/"))
        .filter((key) => key.startsWith(prefix))
        .sort()
    }),
  write: (key, body) =>
    Effect.promise(async () => {
      const file = join(root, "objects", ...key.split("/"))
      await mkdir(dirname(file), { recursive: true })
      await writeFile(file, body)
    }),
  backdate: (key, seconds) =>
    Effect.promise(() => {
      const at = new Date(Date.now() - seconds * 1000)
      return utimes(join(root, "objects", ...key.split("/")), at, at)
    }),
  takesLatePuts: false
}

/** The S3 fake of the running suite (one per suite: its layer starts it). */
const s3Fake = Deferred.unsafeMake<S3FakeShape>(FiberId.none)
const onS3 = <A>(use: (fake: S3FakeShape) => Effect.Effect<A>) => Effect.flatMap(Deferred.await(s3Fake), use)

const s3Uploads = exposeUploadsService()

const s3: Backend = {
  name: "S3 (fake, real SDK)",
  server: serverOn(
    Layer.effect(
      Storage,
      Effect.map(Storage, (storage) => Storage.of(gate(storage)))
    ).pipe(Layer.provide(Layer.unwrapEffect(Effect.map(S3Fake, (fake) => fake.storage)))),
    s3Uploads
  ).pipe(
    Layer.provide(
      Layer.effect(
        S3Fake,
        Effect.tap(S3Fake, (fake) => Deferred.succeed(s3Fake, fake))
      ).pipe(Layer.provide(S3Fake.layer()))
    )
  ),
  sweep: Effect.flatMap(s3Uploads.service, (service) => service.sweep),
  keys: (prefix) => onS3((fake) => fake.keys(prefix)),
  write: (key, body) => onS3((fake) => fake.put([{ key, body, contentType: "image/webp" }])),
  backdate: (key, seconds) => onS3((fake) => fake.backdate(key, seconds)),
  takesLatePuts: true
}

/** Uploads `png` (its ticket kept, to use again) and starts a session of it: the session's id and the upload's keys. */
const started = (
  url: string,
  headers: Record<string, string>,
  png: Uint8Array,
  before: (key: string) => Effect.Effect<void> = () => Effect.void
) =>
  Effect.gen(function* () {
    const ticket = yield* ticketFor(url, headers, png)
    const sent = yield* sendBytes(ticket, png)
    expect(sent.status).toBe(200)
    const key = yield* uploadKey(ticket.uploadId)
    yield* before(key)
    const created = yield* createSession(url, headers, { uploadIds: [ticket.uploadId] })
    expect(created.status).toBe(202)
    return {
      id: (created.body as { data: WireSession }).data.id,
      uploadId: ticket.uploadId,
      ticket,
      keys: keysOf(key)
    }
  })

/** `started`, the next write of its normalised image held (`plan.hold`): once that write is reached, the session and its hold. */
const startedHeld = (url: string, headers: Record<string, string>, png: Uint8Array) =>
  Effect.gen(function* () {
    const hold = {
      reached: yield* Deferred.make<void>(),
      release: yield* Deferred.make<void>(),
      written: yield* Deferred.make<void>()
    }
    const session = yield* started(url, headers, png, (key) =>
      Effect.sync(() => {
        plan.hold = { key, ...hold }
      })
    )
    yield* Deferred.await(hold.reached)
    return { ...session, hold }
  })

/** The ticket's URL used again with the same bytes: 200 where the store takes it. */
const putAgain = (backend: Backend, ticket: Ticket, png: Uint8Array) =>
  Effect.gen(function* () {
    const again = yield* sendBytes(ticket, png)
    if (backend.takesLatePuts) expect(again.status).toBe(200)
    else expect(again.status).toBeGreaterThanOrEqual(400)
  })

const scenarios = (backend: Backend) =>
  layer(backend.server, { timeout: 120_000 })(
    `sessions: no full-size screenshot outlives the session's end (${backend.name})`,
    (it) => {
      const { keys: keysUnder, sweep } = backend

      it.effect("completed: only the thumbnail stays", () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const { alice } = yield* twoUsers(url)
          openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS)
          const png = yield* Effect.promise(() => tinyImage("png", 65, 50))
          const { id, keys } = yield* started(url, alice.headers, png)
          expect((yield* awaitFinished(url, alice.headers, id)).status).toBe("completed")
          expect(yield* keysUnder(keys.original)).toEqual([keys.thumbnail])
        })
      )

      it.effect("the deletion after the transcript's save fails: the session completes, the sweep deletes them", () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const { alice } = yield* twoUsers(url)
          openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS)
          const png = yield* Effect.promise(() => tinyImage("png", 66, 50))
          const { id, keys } = yield* started(url, alice.headers, png, (key) =>
            Effect.sync(() => {
              plan.removal = { key, how: "fail" }
            })
          )
          const done = yield* awaitFinished(url, alice.headers, id)
          expect(done.status).toBe("completed")
          // The deletion was refused: both full-size copies are still there.
          expect(plan.removal).toBeUndefined()
          expect(yield* keysUnder(keys.original)).toEqual([keys.original, keys.thumbnail, keys.image])

          yield* sweep
          // The thumbnail stays with the completed session.
          expect(yield* keysUnder(keys.original)).toEqual([keys.thumbnail])
        })
      )

      it.effect("the attempt dies between the transcript's save and the deletion: the retry deletes them", () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const { alice } = yield* twoUsers(url)
          openai.setFallback(FAKE_SUGGESTIONS)
          openai.enqueue(FAKE_VISION)
          const png = yield* Effect.promise(() => tinyImage("png", 67, 50))
          const { id, keys } = yield* started(url, alice.headers, png, (key) =>
            Effect.sync(() => {
              plan.removal = { key, how: "die" }
            })
          )
          const done = yield* awaitFinished(url, alice.headers, id)
          expect(done.status).toBe("completed")
          expect(plan.removal).toBeUndefined()
          // One read of the screenshot: the retry found the transcript saved.
          expect(openai.requests.filter((request) => request.image)).toHaveLength(1)
          expect(yield* sql("SELECT 1 FROM transcript_messages WHERE session_id = $1", [id])).toHaveLength(2)
          // No sweep: the retry itself deleted them.
          expect(yield* keysUnder(keys.original)).toEqual([keys.thumbnail])
        })
      )

      it.effect("deleted while its image is being normalised: no object and no upload row is left", () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const { alice } = yield* twoUsers(url)
          const png = yield* Effect.promise(() => tinyImage("png", 68, 50))
          const { id, uploadId, keys, hold } = yield* startedHeld(url, alice.headers, png)

          const deleted = yield* http(`${url}/api/v1/sessions/${id}`, { method: "DELETE", headers: alice.headers })
          expect(deleted.status).toBe(204)
          // The attempt, unaware, writes the normalised image now and ends.
          yield* Deferred.succeed(hold.release, undefined)
          yield* Deferred.await(hold.written)
          yield* attemptEnded(id)
          // Without a sweep: the attempt deleted what it wrote.
          expect(yield* keysUnder(keys.original)).toEqual([])

          yield* sweep
          expect(yield* keysUnder(keys.original)).toEqual([])
          expect(yield* sql("SELECT 1 FROM uploads WHERE id = $1", [uploadId])).toEqual([])
          expect(yield* sql("SELECT 1 FROM sessions WHERE id = $1", [id])).toEqual([])
        })
      )

      it.effect(
        "a session upload whose session is gone (deleted before uploads went with it): the sweep deletes its objects and row",
        () =>
          Effect.gen(function* () {
            const url = yield* baseUrl
            const { alice } = yield* twoUsers(url)
            openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS)
            const png = yield* Effect.promise(() => tinyImage("png", 70, 50))
            const { id, uploadId, keys } = yield* started(url, alice.headers, png)
            expect((yield* awaitFinished(url, alice.headers, id)).status).toBe("completed")
            // What a deletion used to leave: the upload row, used, and the thumbnail it records; taken long ago.
            yield* sql("DELETE FROM sessions WHERE id = $1", [id])
            yield* sql("UPDATE uploads SET used_at = now() - interval '1 day' WHERE id = $1", [uploadId])
            expect(yield* keysUnder(keys.original)).toEqual([keys.thumbnail])

            yield* sweep
            expect(yield* keysUnder(keys.original)).toEqual([])
            expect(yield* sql("SELECT 1 FROM uploads WHERE id = $1", [uploadId])).toEqual([])
          })
      )

      it.effect("an unreadable image fails the session: its original is deleted at once", () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const { alice } = yield* twoUsers(url)
          const png = yield* Effect.promise(() => truncatedPng())
          const { id, keys } = yield* started(url, alice.headers, png)
          const done = yield* awaitFinished(url, alice.headers, id)
          expect(done).toMatchObject({ status: "failed", errorCode: "IMAGE_UNREADABLE" })
          expect(yield* keysUnder(keys.original)).toEqual([])
        })
      )

      it.effect(
        "cancelled while the screenshot is read, before the model wrote a message: nothing was stored yet, the thumbnail stays",
        () =>
          Effect.gen(function* () {
            const url = yield* baseUrl
            const { alice } = yield* twoUsers(url)
            openai.enqueue({ kind: "hang" })
            const aborted = openai.nextClientAbort()
            const png = yield* Effect.promise(() => tinyImage("png", 69, 50))
            const { id, keys } = yield* started(url, alice.headers, png)
            yield* eventually(
              Effect.sync(() => openai.requests.filter((request) => request.image).length),
              (count) => count === 1,
              "the screenshot to be read"
            )
            // The normalised image and its thumbnail wait for the model's first message.
            expect(yield* keysUnder(keys.original)).toEqual([keys.original])

            yield* cancelledMidRead(url, alice.headers, id, aborted)
            // The stopped attempt stores the thumbnail (recorded on the ended session), not the image.
            yield* attemptEnded(id)
            expect(yield* keysUnder(keys.original)).toEqual([keys.thumbnail])
            yield* expectThumbnailShown(url, alice.headers, id, "cancelled")
          })
      )

      it.effect("cancelled while the model writes: the full-size copies go, the thumbnail stays", () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const { alice } = yield* twoUsers(url)
          openai.enqueue(firstMessageThenHang)
          const aborted = openai.nextClientAbort()
          const png = yield* Effect.promise(() => tinyImage("png", 70, 50))
          const { id, keys } = yield* started(url, alice.headers, png)
          // Stored and recorded from the model's first message on, while it writes the rest.
          yield* thumbnailRecorded(id)
          expect(yield* keysUnder(keys.original)).toEqual([keys.original, keys.thumbnail, keys.image])

          yield* cancelledMidRead(url, alice.headers, id, aborted)
          expect(yield* keysUnder(keys.original)).toEqual([keys.thumbnail])
        })
      )

      it.effect(
        "cancelled while the screenshot is being stored: the normalised image written after the cancel goes, the thumbnail stays",
        () =>
          Effect.gen(function* () {
            const url = yield* baseUrl
            const { alice } = yield* twoUsers(url)
            openai.enqueue(firstMessageThenHang)
            const png = yield* Effect.promise(() => tinyImage("png", 81, 50))
            const { id, keys, hold } = yield* startedHeld(url, alice.headers, png)
            const cancelled = yield* http(`${url}/api/v1/sessions/${id}/cancel`, {
              method: "POST",
              headers: alice.headers
            })
            expect(cancelled.body).toMatchObject({ data: { id, status: "cancelled" } })
            // The stopped attempt finishes the store it started: the image written after the cancel goes.
            yield* Deferred.succeed(hold.release, undefined)
            yield* Deferred.await(hold.written)
            yield* attemptEnded(id)
            expect(yield* keysUnder(keys.original)).toEqual([keys.thumbnail])
            yield* expectThumbnailShown(url, alice.headers, id, "cancelled")
            yield* sweep
            expect(yield* keysUnder(keys.original)).toEqual([keys.thumbnail])
          })
      )

      it.effect(
        "the account is erased, a session done and one being normalised: nothing is left under its prefix",
        () =>
          Effect.gen(function* () {
            const url = yield* baseUrl
            const { alice, bob } = yield* twoUsers(url)
            openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS, FAKE_VISION, FAKE_SUGGESTIONS)
            const done = yield* started(url, alice.headers, yield* Effect.promise(() => tinyImage("png", 71, 50)))
            expect((yield* awaitFinished(url, alice.headers, done.id)).status).toBe("completed")
            const bobs = yield* started(url, bob.headers, yield* Effect.promise(() => tinyImage("png", 72, 50)))
            expect((yield* awaitFinished(url, bob.headers, bobs.id)).status).toBe("completed")

            const png = yield* Effect.promise(() => tinyImage("png", 73, 50))
            const running = yield* startedHeld(url, alice.headers, png)
            const hold = running.hold
            // (The thumbnail is written beside the held image: it may be there already.)
            expect(yield* keysUnder(`users/${alice.id}/`)).toEqual(
              expect.arrayContaining([done.keys.thumbnail, running.keys.original])
            )

            const erased = yield* http(`${url}/api/v1/users/me`, { method: "DELETE", headers: alice.headers })
            expect(erased.status).toBe(204)
            expect(yield* keysUnder(`users/${alice.id}/`)).toEqual([])
            // The attempt, unaware, writes the normalised image now and ends: it deletes what it wrote.
            yield* Deferred.succeed(hold.release, undefined)
            yield* Deferred.await(hold.written)
            yield* attemptEnded(running.id)
            yield* sweep
            expect(yield* keysUnder(`users/${alice.id}/`)).toEqual([])
            // Nobody else's objects went with it.
            expect(yield* keysUnder(`users/${bob.id}/`)).toEqual([bobs.keys.thumbnail])
          })
      )

      it.effect(
        "objects no upload row refers to go at the next sweep; an unrecorded normalised image waits out the URL TTL",
        () =>
          Effect.gen(function* () {
            const url = yield* baseUrl
            const { alice } = yield* twoUsers(url)
            const png = yield* Effect.promise(() => tinyImage("png", 74, 50))
            const orphan = yield* ticketFor(url, alice.headers, png)
            expect((yield* sendBytes(orphan, png)).status).toBe(200)
            const gone = keysOf(yield* uploadKey(orphan.uploadId))
            yield* backend.write(gone.thumbnail, png)
            // What a crash leaves: the row deleted, its objects not (as by a sweep or a deletion dying between them).
            yield* sql("DELETE FROM uploads WHERE id = $1", [orphan.uploadId])
            // A live upload, and a normalised image of it not recorded (yet: it may be being processed).
            const live = yield* ticketFor(url, alice.headers, png)
            expect((yield* sendBytes(live, png)).status).toBe(200)
            const kept = keysOf(yield* uploadKey(live.uploadId))
            yield* backend.write(kept.image, png)

            yield* sweep
            expect(yield* keysUnder(gone.original)).toEqual([])
            expect(yield* keysUnder(kept.original)).toEqual([kept.original, kept.image])
            yield* backend.backdate(kept.image, URL_TTL_SECONDS + 60)
            yield* sweep
            expect(yield* keysUnder(kept.original)).toEqual([kept.original])
          })
      )

      it.effect("deleted, the store failing the objects' deletion: the next sweep deletes them", () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const { alice } = yield* twoUsers(url)
          openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS)
          const png = yield* Effect.promise(() => tinyImage("png", 82, 50))
          const { id, keys } = yield* started(url, alice.headers, png)
          expect((yield* awaitFinished(url, alice.headers, id)).status).toBe("completed")
          yield* Effect.sync(() => {
            plan.removal = { key: keys.original, how: "fail" }
          })
          const deleted = yield* http(`${url}/api/v1/sessions/${id}`, { method: "DELETE", headers: alice.headers })
          expect(deleted.status).toBe(204)
          expect(plan.removal).toBeUndefined()
          // The rows went first: nothing refers to the thumbnail left behind.
          expect(yield* keysUnder(keys.original)).toEqual([keys.thumbnail])

          yield* sweep
          expect(yield* keysUnder(keys.original)).toEqual([])
        })
      )

      it.effect("the upload URL used again after the session completed: the sweep deletes what lands", () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const { alice } = yield* twoUsers(url)
          openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS)
          const png = yield* Effect.promise(() => tinyImage("png", 75, 50))
          const { id, ticket, keys } = yield* started(url, alice.headers, png)
          expect((yield* awaitFinished(url, alice.headers, id)).status).toBe("completed")
          expect(yield* keysUnder(keys.original)).toEqual([keys.thumbnail])

          yield* putAgain(backend, ticket, png)
          yield* sweep
          expect(yield* keysUnder(keys.original)).toEqual([keys.thumbnail])
        })
      )

      it.effect("the upload URL used again after the session was deleted: the sweep deletes what lands", () =>
        Effect.gen(function* () {
          const url = yield* baseUrl
          const { alice } = yield* twoUsers(url)
          openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS)
          const png = yield* Effect.promise(() => tinyImage("png", 76, 50))
          const { id, ticket, keys } = yield* started(url, alice.headers, png)
          expect((yield* awaitFinished(url, alice.headers, id)).status).toBe("completed")
          const deleted = yield* http(`${url}/api/v1/sessions/${id}`, { method: "DELETE", headers: alice.headers })
          expect(deleted.status).toBe(204)
          expect(yield* keysUnder(keys.original)).toEqual([])

          yield* putAgain(backend, ticket, png)
          expect(yield* keysUnder(keys.original)).toEqual(backend.takesLatePuts ? [keys.original] : [])
          // No row refers to it any more (every upload's row is written before its URL is handed
          // out): the next sweep deletes it, however recent.
          yield* sweep
          expect(yield* keysUnder(keys.original)).toEqual([])
        })
      )

      if (backend === s3) {
        it.effect(
          "DeleteObjects answers 200 with a per-key error at the session's end: the refused object stays, the sweep deletes it",
          () =>
            Effect.gen(function* () {
              const url = yield* baseUrl
              const { alice } = yield* twoUsers(url)
              openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS)
              const png = yield* Effect.promise(() => tinyImage("png", 77, 50))
              const { id, keys } = yield* started(url, alice.headers, png, (key) =>
                onS3((fake) => fake.refuseDeletes([`${key}.webp`]))
              )
              expect((yield* awaitFinished(url, alice.headers, id)).status).toBe("completed")
              // The other keys of the same request went; the refused one is still in the bucket.
              expect(yield* keysUnder(keys.original)).toEqual([keys.thumbnail, keys.image])

              yield* onS3((fake) => fake.allowDeletes)
              yield* sweep
              expect(yield* keysUnder(keys.original)).toEqual([keys.thumbnail])
            })
        )

        it.effect(
          "a session upload whose session is gone, one object refused: its row stays until every object is gone",
          () =>
            Effect.gen(function* () {
              const url = yield* baseUrl
              const { alice } = yield* twoUsers(url)
              openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS)
              const png = yield* Effect.promise(() => tinyImage("png", 78, 50))
              const { id, uploadId, keys } = yield* started(url, alice.headers, png)
              expect((yield* awaitFinished(url, alice.headers, id)).status).toBe("completed")
              yield* sql("DELETE FROM sessions WHERE id = $1", [id])
              yield* sql("UPDATE uploads SET used_at = now() - interval '1 day' WHERE id = $1", [uploadId])
              yield* onS3((fake) => fake.refuseDeletes([keys.thumbnail]))

              yield* sweep
              // The store said no for the thumbnail: the row that leads the sweep back to it stays.
              expect(yield* keysUnder(keys.original)).toEqual([keys.thumbnail])
              expect(yield* sql("SELECT 1 FROM uploads WHERE id = $1", [uploadId])).toHaveLength(1)

              yield* onS3((fake) => fake.allowDeletes)
              yield* sweep
              expect(yield* keysUnder(keys.original)).toEqual([])
              expect(yield* sql("SELECT 1 FROM uploads WHERE id = $1", [uploadId])).toEqual([])
            })
        )

        it.effect(
          "more than 1000 objects, one the store refuses to delete: the sweep pages on and deletes the screenshots after it",
          () =>
            Effect.gen(function* () {
              const url = yield* baseUrl
              const { alice } = yield* twoUsers(url)
              openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS)
              const png = yield* Effect.promise(() => tinyImage("png", 79, 50))
              // A completed session whose full-size copies were not deleted (the deletion failed).
              const { id, keys } = yield* started(url, alice.headers, png, (key) =>
                Effect.sync(() => {
                  plan.removal = { key, how: "fail" }
                })
              )
              expect((yield* awaitFinished(url, alice.headers, id)).status).toBe("completed")
              expect(yield* keysUnder(keys.original)).toEqual([keys.original, keys.thumbnail, keys.image])
              // 1100 leftovers no row refers to, listed before it ("0" sorts before every user id);
              // the first of them the store refuses to delete.
              const leftovers = Array.from(
                { length: 1100 },
                (_, index) => `users/0-leftovers/uploads/${String(index).padStart(4, "0")}`
              )
              yield* onS3((fake) => fake.put(leftovers.map((key) => ({ key, body: png, contentType: "image/png" }))))
              yield* onS3((fake) => fake.refuseDeletes([leftovers[0] ?? ""]))

              yield* sweep
              expect(yield* keysUnder("users/0-leftovers/")).toEqual([leftovers[0]])
              expect(yield* keysUnder(keys.original)).toEqual([keys.thumbnail])

              yield* onS3((fake) => fake.allowDeletes)
              yield* sweep
              expect(yield* keysUnder("users/0-leftovers/")).toEqual([])
            })
        )

        it.effect(
          "an erased user's object the store refuses to delete does not stop the sweep of others' screenshots; a later sweep empties the prefix",
          () =>
            Effect.gen(function* () {
              const url = yield* baseUrl
              const { alice, bob } = yield* twoUsers(url)
              openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS, FAKE_VISION, FAKE_SUGGESTIONS)
              const png = yield* Effect.promise(() => tinyImage("png", 81, 50))
              const alices = yield* started(url, alice.headers, png)
              expect((yield* awaitFinished(url, alice.headers, alices.id)).status).toBe("completed")
              // Bob's session completes, its full-size copies not deleted (the deletion failed).
              const bobs = yield* started(url, bob.headers, png, (key) =>
                Effect.sync(() => {
                  plan.removal = { key, how: "fail" }
                })
              )
              expect((yield* awaitFinished(url, bob.headers, bobs.id)).status).toBe("completed")
              yield* onS3((fake) => fake.refuseDeletes([alices.keys.thumbnail]))

              // The erasure's storage step fails: 500, the tombstone kept for a retry.
              const erased = yield* http(`${url}/api/v1/users/me`, { method: "DELETE", headers: alice.headers })
              expect(erased.status).toBe(500)
              yield* sweep
              expect(yield* keysUnder(`users/${alice.id}/`)).toEqual([alices.keys.thumbnail])
              expect(yield* keysUnder(bobs.keys.original)).toEqual([bobs.keys.thumbnail])

              yield* onS3((fake) => fake.allowDeletes)
              yield* sweep
              expect(yield* keysUnder(`users/${alice.id}/`)).toEqual([])
            })
        )

        it.effect("erasure deletes every object under the user's prefix, more than 1000 of them", () =>
          Effect.gen(function* () {
            const url = yield* baseUrl
            const { alice, bob } = yield* twoUsers(url)
            openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS)
            const png = yield* Effect.promise(() => tinyImage("png", 80, 50))
            const { id } = yield* started(url, alice.headers, png)
            expect((yield* awaitFinished(url, alice.headers, id)).status).toBe("completed")
            const many = Array.from(
              { length: 1100 },
              (_, index) => `users/${alice.id}/uploads/many-${String(index).padStart(4, "0")}`
            )
            yield* onS3((fake) => fake.put(many.map((key) => ({ key, body: png, contentType: "image/png" }))))
            const bobs = `users/${bob.id}/uploads/kept`
            yield* onS3((fake) => fake.put([{ key: bobs, body: png, contentType: "image/png" }]))
            expect(yield* keysUnder(`users/${alice.id}/`)).toHaveLength(1101)

            const erased = yield* http(`${url}/api/v1/users/me`, { method: "DELETE", headers: alice.headers })
            expect(erased.status).toBe(204)
            expect(yield* keysUnder(`users/${alice.id}/`)).toEqual([])
            expect(yield* keysUnder(`users/${bob.id}/`)).toEqual([bobs])
          })
        )
      }
    }
  )

scenarios(local)
scenarios(s3)
