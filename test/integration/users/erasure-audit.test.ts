/**
 * The erasure audit (issue #14) on real PostgreSQL, Redis (BullMQ queue, progress, rate limits)
 * and storage (the local disk, and S3 through the fake): a user with matches, openers, a finished
 * session, a queued session and a pending upload ticket is erased; the ticket is used after the
 * erasure; after the sweep, no table holds a row of the user, no object is under their prefix and
 * no Redis key or job mentions them. A second DELETE /users/me still finishes the job.
 *
 * Two servers on the same database, Redis and storage, one after the other: the first runs the
 * sessions worker (the session finishes), the second does not (the next one stays queued).
 */
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Redis as IORedis } from "ioredis"
import { randomBytes } from "node:crypto"
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll } from "vitest"
import { Redis } from "../../../src/core/redis.ts"
import { S3Fake } from "../../fakes/s3/s3.ts"
import { assertFontsRender, chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { tinyImage } from "../../fixtures/images.ts"
import { sql, TestDb } from "../../support/database.ts"
import { http } from "../../support/http.ts"
import { baseUrl, localTestStorage, testServer, type TestServerOptions } from "../../support/server.ts"
import { exposeUploadsService, sendBytes, ticketFor } from "../../support/uploads.ts"
import { provisionUser, type TestUser } from "../../support/users.ts"
import { generateJson, newMatch } from "../openers/support.ts"
import { awaitFinished, createSession, uploadPng, type WireSession } from "../sessions/support.ts"

const REDIS_URL = process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379"

const root = mkdtempSync(join(tmpdir(), "wingmate-erasure-audit-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))

let screenshot: Buffer
beforeAll(async () => {
  await assertFontsRender()
  screenshot = await chatScreenshotPng()
})

const configFor = (queuePrefix: string) => ({
  REDIS_URL,
  QUEUE_PREFIX: queuePrefix,
  UPLOAD_SIGNING_SECRET: "erasure-audit-signing-secret-0123456789abcdef",
  // On, so that the user's rate-limit windows exist in Redis (limits high enough never to refuse).
  RATE_LIMIT_ENABLED: "true",
  RATE_LIMIT_REST_USER: "10000/60s",
  RATE_LIMIT_REST_IP: "10000/60s"
})

/** Every table with a column naming a user or their sessions, from the database's own catalog. */
const rowsMentioning = (ids: { userId: string; clerkId: string; sessionIds: ReadonlyArray<string> }) =>
  Effect.gen(function* () {
    const columns = yield* sql<{ table_name: string; column_name: string }>(
      `SELECT table_name, column_name FROM information_schema.columns
       WHERE table_schema = 'public' AND column_name IN ('user_id', 'clerk_id', 'session_id')
       ORDER BY table_name, column_name`
    )
    // The tombstone is kept on purpose (src/core/erasure.ts); it is checked on its own below.
    const audited = columns.filter((column) => column.table_name !== "erased_accounts")
    expect(audited.map((column) => column.table_name)).toEqual(
      expect.arrayContaining(["uploads", "matches", "magic_openers", "sessions", "ai_calls", "session_images"])
    )
    const found: Array<string> = []
    for (const { table_name, column_name } of audited) {
      const values =
        column_name === "session_id" ? ids.sessionIds : [column_name === "user_id" ? ids.userId : ids.clerkId]
      const rows = yield* sql(`SELECT count(*)::int AS n FROM "${table_name}" WHERE "${column_name}" = ANY($1)`, [
        values
      ])
      if (Number(rows[0]?.["n"]) > 0) found.push(`${table_name}.${column_name}`)
    }
    const users = yield* sql("SELECT id FROM users WHERE id = $1 OR clerk_id = $2", [ids.userId, ids.clerkId])
    if (users.length > 0) found.push("users")
    return found
  })

/** Redis keys whose name or content mentions one of `needles` (the user's ids, their sessions' ids). */
const redisMentioning = (needles: ReadonlyArray<string>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => new IORedis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 1 })),
    (client) =>
      Effect.promise(async () => {
        const hits: Array<string> = []
        let cursor = "0"
        do {
          const [next, keys] = await client.scan(cursor, "COUNT", 1000)
          cursor = next
          for (const key of keys) {
            const type = await client.type(key)
            const content =
              type === "string"
                ? await client.get(key)
                : type === "hash"
                  ? JSON.stringify(await client.hgetall(key))
                  : type === "list"
                    ? JSON.stringify(await client.lrange(key, 0, -1))
                    : type === "set"
                      ? JSON.stringify(await client.smembers(key))
                      : type === "zset"
                        ? JSON.stringify(await client.zrange(key, 0, -1))
                        : type === "stream"
                          ? JSON.stringify(await client.xrange(key, "-", "+"))
                          : ""
            // BullMQ's capped event log names job ids (= session ids) of what it removed, never a user.
            const checked = key.endsWith(":events") ? needles.slice(0, 2) : needles
            if (checked.some((needle) => key.includes(needle) || (content ?? "").includes(needle))) hits.push(key)
          }
        } while (cursor !== "0")
        return hits
      }),
    (client) => Effect.promise(() => client.quit())
  )

/** Phase 1, with the worker: matches, openers, a finished session. */
const finishedWork = Effect.gen(function* () {
  const url = yield* baseUrl
  const user = yield* provisionUser(url, "erased")
  const match = yield* newMatch(url, user.headers, { name: "Sam", bio: "Climber", interests: ["climbing"] })
  const openers = yield* generateJson(url, user.headers, { matchId: match.id, count: 2 })
  expect(openers.status).toBe(200)
  const uploadId = yield* uploadPng(url, user.headers, screenshot)
  const created = yield* createSession(url, user.headers, { uploadIds: [uploadId], matchId: match.id })
  expect(created.status).toBe(202)
  const finished = yield* awaitFinished(url, user.headers, (created.body as { data: WireSession }).data.id)
  expect(finished.status).toBe("completed")
  return { user, finishedId: finished.id }
})

/** Phase 2, without the worker: a queued session, a pending ticket; erase; use the ticket; sweep; audit. */
const eraseAndAudit = (
  user: TestUser,
  finishedId: string,
  sweep: Effect.Effect<unknown, unknown>,
  objectsUnder: (prefix: string) => Effect.Effect<ReadonlyArray<string>>,
  ticketAfterErasure: number
) =>
  Effect.gen(function* () {
    const url = yield* baseUrl
    const png = yield* Effect.promise(() => tinyImage("png"))
    const queuedUpload = yield* uploadPng(url, user.headers, png)
    const queued = yield* createSession(url, user.headers, { uploadIds: [queuedUpload] })
    expect(queued.status).toBe(202)
    const queuedId = (queued.body as { data: WireSession }).data.id
    const ticket = yield* ticketFor(url, user.headers, png)
    const ids = { userId: user.id, clerkId: user.clerkId, sessionIds: [finishedId, queuedId] }
    const needles = [user.id, user.clerkId, finishedId, queuedId]
    // The audit sees what there is to erase: rows, objects, rate-limit windows, the queued job.
    expect(yield* rowsMentioning(ids)).toEqual(
      expect.arrayContaining(["users", "matches.user_id", "magic_openers.user_id", "sessions.user_id"])
    )
    expect((yield* objectsUnder(`users/${user.id}/`)).length).toBeGreaterThan(0)
    const before = yield* redisMentioning(needles)
    expect(before.some((key) => key.includes(":user:"))).toBe(true)
    expect(before.some((key) => key.endsWith(queuedId))).toBe(true)

    const erased = yield* http(`${url}/api/v1/users/me`, { method: "DELETE", headers: user.headers })
    expect(erased.status).toBe(204)
    const late = yield* sendBytes(ticket, png)
    expect(late.status).toBe(ticketAfterErasure)
    yield* sweep

    expect(yield* rowsMentioning(ids)).toEqual([])
    expect(yield* objectsUnder(`users/${user.id}/`)).toEqual([])
    expect(yield* redisMentioning(needles)).toEqual([])
    // What is kept: the tombstone, a hash of the Clerk id, the internal id and the time.
    const tombstone = yield* sql("SELECT * FROM erased_accounts WHERE user_id = $1", [user.id])
    expect(tombstone.map((row) => Object.keys(row).sort())).toEqual([["clerk_id_hash", "erased_at", "user_id"]])
    expect(JSON.stringify(tombstone)).not.toContain(user.clerkId)
  })

/** Both phases on `storage`: the work with the worker, then erasure and the audit without it. */
const audit = (
  storage: NonNullable<TestServerOptions["storage"]>,
  objectsUnder: (prefix: string) => Effect.Effect<ReadonlyArray<string>>,
  ticketAfterErasure: number
) =>
  Effect.gen(function* () {
    const config = configFor(`wm-audit-${randomBytes(4).toString("hex")}`)
    const { user, finishedId } = yield* finishedWork.pipe(
      Effect.provide(testServer({ db: TestDb(), redis: Redis.layer, config, storage, consumer: true }))
    )
    const uploads = exposeUploadsService()
    const sweep = Effect.flatMap(uploads.service, (service) => service.sweep)
    yield* eraseAndAudit(user, finishedId, sweep, objectsUnder, ticketAfterErasure).pipe(
      Effect.provide(testServer({ db: TestDb(), redis: Redis.layer, config, storage, routes: uploads.layer }))
    )
  })

/** Files of the local storage under `prefix`: objects, their metadata and the keys' one-PUT markers. */
const localFiles = (prefix: string) =>
  Effect.sync(() =>
    ["objects", "meta", "spent"].flatMap((area) => {
      const dir = join(root, area, ...prefix.split("/").filter(Boolean))
      return existsSync(dir)
        ? readdirSync(dir, { recursive: true, withFileTypes: true })
            .filter((entry) => entry.isFile())
            .map((entry) => join(entry.parentPath, entry.name))
        : []
    })
  )

describe("erasure audit", () => {
  it.live(
    "local storage: no row, object, Redis key or job of the erased user remains; the late ticket is refused",
    () =>
      Effect.gen(function* () {
        yield* audit(localTestStorage({ root }), localFiles, 403)
        expect(readdirSync(join(root, "tmp"))).toEqual([])
      }),
    180_000
  )

  it.live(
    "S3 (fake): no row, object, Redis key or job of the erased user remains; the late object is swept",
    () =>
      Effect.gen(function* () {
        const fake = yield* S3Fake
        const client = yield* Effect.acquireRelease(
          Effect.sync(
            () =>
              new S3Client({
                region: "us-east-1",
                endpoint: fake.endpoint,
                forcePathStyle: true,
                credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" }
              })
          ),
          (client) => Effect.sync(() => client.destroy())
        )
        const objects = (prefix: string) =>
          Effect.promise(() =>
            client
              .send(new ListObjectsV2Command({ Bucket: fake.bucket, Prefix: prefix }))
              .then((page) => (page.Contents ?? []).map((object) => object.Key ?? ""))
          )
        yield* audit(fake.storage, objects, 200)
      }).pipe(Effect.provide(S3Fake.layer()), Effect.scoped),
    180_000
  )
})
