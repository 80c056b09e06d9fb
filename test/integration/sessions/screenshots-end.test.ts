/**
 * No full-size copy of a screenshot outlives its session's end, however it ends (README, Privacy):
 * - the deletion after the transcript's save fails: the upload sweep deletes them, the session
 *   having ended; the attempt dies right there (a worker killed): the retry, which finds the
 *   transcript saved, deletes them;
 * - the session is deleted while its image is being normalised (the write held until the delete
 *   answered, as by a worker that has not yet seen the cancel): no object, no upload row;
 * - a session upload left by a deletion before uploads went with their session: the sweep deletes
 *   its objects and row;
 * - an unreadable image fails the session, a cancel during OCR cancels it: the original and the
 *   normalised image are gone at once; a cancelled session keeps its thumbnail, as a completed one.
 * In-process queue, two attempts, the AI chain at the OpenAI wire fake, local storage wrapped to
 * fail or hold chosen operations.
 */
import { expect, layer } from "@effect/vitest"
import { Context, Deferred, Effect, Layer, Queue } from "effect"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeEach } from "vitest"
import { LocalStorageHttp } from "../../../src/core/storage/local.ts"
import { StorageError } from "../../../src/core/storage/model.ts"
import { Storage } from "../../../src/core/storage/storage.ts"
import { SessionJobs } from "../../../src/modules/sessions/sessions.jobs.ts"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { tinyImage, truncatedPng } from "../../fixtures/images.ts"
import { openAiFakeConfig } from "../../support/ai-config.ts"
import { sql, TestDb } from "../../support/database.ts"
import { eventually } from "../../support/eventually.ts"
import { http } from "../../support/http.ts"
import { baseUrl, localTestStorage, testServer } from "../../support/server.ts"
import { exposeUploadsService } from "../../support/uploads.ts"
import { twoUsers } from "../../support/users.ts"
import { awaitFinished, createSession, FAKE_SUGGESTIONS, FAKE_VISION, uploadPng, type WireSession } from "./support.ts"

const openai = await startFakeOpenAI()
afterAll(() => openai.close())
beforeEach(() => openai.reset())
const root = mkdtempSync(join(tmpdir(), "wm-screenshots-end-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))
const stored = (key: string) => existsSync(join(root, "objects", ...key.split("/")))

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

const gatedStorage = Layer.effectContext(
  Effect.gen(function* () {
    const storage = yield* Storage
    const localHttp = yield* LocalStorageHttp
    const wrapped = Storage.of({
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
    return Context.make(Storage, wrapped).pipe(Context.add(LocalStorageHttp, localHttp))
  })
).pipe(Layer.provide(localTestStorage({ root })))

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

const uploads = exposeUploadsService()

/** The keys of one upload: the original, the normalised image and the thumbnail, as `processWithImage` names them. */
const keysOf = (key: string) => ({ original: key, image: `${key}.webp`, thumbnail: `${key}.thumb.webp` })

const uploadKey = (uploadId: string) =>
  Effect.flatMap(sql<{ key: string }>("SELECT key FROM uploads WHERE id = $1", [uploadId]), (rows) =>
    rows[0] === undefined ? Effect.dieMessage("no upload row") : Effect.succeed(rows[0].key)
  )

/** Uploads `png` and starts a session of it: the session's id and the upload's keys. */
const started = (url: string, headers: Record<string, string>, png: Uint8Array, before?: (key: string) => void) =>
  Effect.gen(function* () {
    const uploadId = yield* uploadPng(url, headers, png)
    const key = yield* uploadKey(uploadId)
    before?.(key)
    const created = yield* createSession(url, headers, { uploadIds: [uploadId] })
    expect(created.status).toBe(202)
    return { id: (created.body as { data: WireSession }).data.id, uploadId, keys: keysOf(key) }
  })

layer(
  testServer({
    db: TestDb(),
    consumer: true,
    storage: gatedStorage,
    jobs: observedJobs,
    routes: uploads.layer,
    config: {
      ...openAiFakeConfig(openai.url),
      QUEUE_ATTEMPTS: "2",
      QUEUE_BACKOFF_MS: "0",
      AI_TIMEOUT_MS: "60000",
      // The test runs the sweep itself.
      UPLOAD_SWEEP_INTERVAL_SECONDS: "3600"
    }
  }),
  { timeout: 120_000 }
)("sessions: no full-size screenshot outlives the session's end", (it) => {
  it.effect("the deletion after the transcript's save fails: the session completes, the sweep deletes them", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      openai.enqueue(FAKE_VISION, FAKE_SUGGESTIONS)
      const png = yield* Effect.promise(() => tinyImage("png", 66, 50))
      const { id, keys } = yield* started(url, alice.headers, png, (key) => {
        plan.removal = { key, how: "fail" }
      })
      const done = yield* awaitFinished(url, alice.headers, id)
      expect(done.status).toBe("completed")
      // The deletion was refused: both full-size copies are still there.
      expect(plan.removal).toBeUndefined()
      expect([stored(keys.original), stored(keys.image), stored(keys.thumbnail)]).toEqual([true, true, true])

      yield* Effect.flatMap(uploads.service, (service) => service.sweep)
      expect([stored(keys.original), stored(keys.image)]).toEqual([false, false])
      // The thumbnail stays with the completed session.
      expect(stored(keys.thumbnail)).toBe(true)
    })
  )

  it.effect("the attempt dies between the transcript's save and the deletion: the retry deletes them", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      openai.setFallback(FAKE_SUGGESTIONS)
      openai.enqueue(FAKE_VISION)
      const png = yield* Effect.promise(() => tinyImage("png", 67, 50))
      const { id, keys } = yield* started(url, alice.headers, png, (key) => {
        plan.removal = { key, how: "die" }
      })
      const done = yield* awaitFinished(url, alice.headers, id)
      expect(done.status).toBe("completed")
      expect(plan.removal).toBeUndefined()
      // One read of the screenshot: the retry found the transcript saved.
      expect(openai.requests.filter((request) => request.image)).toHaveLength(1)
      expect(yield* sql("SELECT 1 FROM transcript_messages WHERE session_id = $1", [id])).toHaveLength(2)
      // No sweep: the retry itself deleted them.
      expect([stored(keys.original), stored(keys.image), stored(keys.thumbnail)]).toEqual([false, false, true])
    })
  )

  it.effect("deleted while its image is being normalised: no object and no upload row is left", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const hold = {
        reached: yield* Deferred.make<void>(),
        release: yield* Deferred.make<void>(),
        written: yield* Deferred.make<void>()
      }
      const png = yield* Effect.promise(() => tinyImage("png", 68, 50))
      const { id, uploadId, keys } = yield* started(url, alice.headers, png, (key) => {
        plan.hold = { key, ...hold }
      })
      yield* Deferred.await(hold.reached)

      const deleted = yield* http(`${url}/api/v1/sessions/${id}`, { method: "DELETE", headers: alice.headers })
      expect(deleted.status).toBe(204)
      // The attempt, unaware, writes the normalised image now and ends.
      yield* Deferred.succeed(hold.release, undefined)
      yield* Deferred.await(hold.written)
      yield* attemptEnded(id)

      yield* Effect.flatMap(uploads.service, (service) => service.sweep)
      expect([stored(keys.original), stored(keys.image), stored(keys.thumbnail)]).toEqual([false, false, false])
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
        expect(stored(keys.thumbnail)).toBe(true)

        yield* Effect.flatMap(uploads.service, (service) => service.sweep)
        expect(stored(keys.thumbnail)).toBe(false)
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
      expect([stored(keys.original), stored(keys.image), stored(keys.thumbnail)]).toEqual([false, false, false])
    })
  )

  it.effect("cancelled while the screenshot is read: the full-size copies go, the thumbnail stays", () =>
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
      expect(stored(keys.image)).toBe(true)

      const cancelled = yield* http(`${url}/api/v1/sessions/${id}/cancel`, { method: "POST", headers: alice.headers })
      expect(cancelled.status).toBe(200)
      expect(cancelled.body).toMatchObject({ data: { id, status: "cancelled" } })
      yield* Effect.promise(() => aborted)
      expect([stored(keys.original), stored(keys.image), stored(keys.thumbnail)]).toEqual([false, false, true])
    })
  )
})
