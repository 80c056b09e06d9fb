/**
 * SESSION_SCREENSHOT_RETENTION_SECONDS: 0 (default) deletes a session's original screenshots
 * right after OCR succeeded; > 0 keeps them until `originals_expire_at`, then the sessions
 * sweeper deletes them (the normalised image and thumbnail stay with the session).
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll } from "vitest"
import { assertFontsRender, chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { sql, TestDb } from "../../support/database.ts"
import { baseUrl, localTestStorage, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { eventually } from "../openers/support.ts"
import { awaitFinished, createSession, uploadPng, type WireSession } from "./support.ts"

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

layer(testServer({ db: TestDb(), consumer: true, storage: localTestStorage({ root: immediateRoot }) }), {
  timeout: 120_000
})("sessions: screenshot retention 0 (default)", (it) => {
  it.effect("the original is deleted once OCR succeeded; the normalised image and thumbnail stay", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const root = immediateRoot
      const { id, keys } = yield* completed(url, alice.headers)
      expect(existsSync(objectPath(root, keys.original))).toBe(false)
      expect(existsSync(objectPath(root, keys.image))).toBe(true)
      expect(existsSync(objectPath(root, keys.thumbnail))).toBe(true)
      expect(yield* expiry(id)).toBeNull()
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
  it.effect("the original is kept until its expiry, then the sweeper deletes it", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const root = retainedRoot
      const { id, keys } = yield* completed(url, alice.headers)
      const at = yield* expiry(id)
      expect(at).toBeInstanceOf(Date)
      expect(existsSync(objectPath(root, keys.original))).toBe(true)

      // Its retention is over: the next sweep deletes it and clears the expiry.
      yield* sql("UPDATE sessions SET originals_expire_at = now() - interval '1 second' WHERE id = $1", [id])
      const cleared = yield* eventually(expiry(id), (value) => value === null, 200)
      expect(cleared).toBeNull()
      expect(existsSync(objectPath(root, keys.original))).toBe(false)
      expect(existsSync(objectPath(root, keys.image))).toBe(true)
      expect(existsSync(objectPath(root, keys.thumbnail))).toBe(true)
    })
  )
})
