/**
 * `GET /api/v1/sessions`: pages through the cursor, newest first with ties on `created_at` broken
 * by id, every session once, the image count and summary fields as stored, only the caller's
 * sessions, and a cursor that does not decode refused. Rows are written with SQL so that
 * timestamps (ties, milliseconds) and counts are exactly what the test says.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { sql, TestDb } from "../../support/database.ts"
import { http } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"

interface Summary {
  readonly id: string
  readonly matchId: string | null
  readonly status: string
  readonly phase: string | null
  readonly errorCode: string | null
  readonly tone: string
  readonly language: string
  readonly imageCount: number
  readonly createdAt: string
  readonly completedAt: string | null
}

const insertSession = (
  userId: string,
  id: string,
  createdAt: string,
  images: number,
  extra: { status?: string; phase?: string | null; errorCode?: string | null; completedAt?: string | null } = {}
) =>
  Effect.gen(function* () {
    yield* sql(
      `INSERT INTO sessions (id, user_id, status, phase, error_code, tone, language, created_at, updated_at, completed_at)
       VALUES ($1, $2, $3::session_status, $4, $5, 'witty', 'fr', $6, $6, $7)`,
      [
        id,
        userId,
        extra.status ?? "completed",
        extra.phase ?? null,
        extra.errorCode ?? null,
        createdAt,
        extra.completedAt ?? null
      ]
    )
    for (let position = 0; position < images; position++) {
      const uploadId = `${id}u${position}`
      yield* sql(
        `INSERT INTO uploads (id, user_id, key, purpose, content_type, content_length, status, expires_at, updated_at)
         VALUES ($1, $2, $3, 'session', 'image/png', 10, 'verified', now(), now())`,
        [uploadId, userId, `test/${uploadId}`]
      )
      yield* sql(`INSERT INTO session_images (id, session_id, upload_id, position) VALUES ($1, $2, $3, $4)`, [
        `${id}i${position}`,
        id,
        uploadId,
        position
      ])
    }
  })

layer(testServer({ db: TestDb() }), { timeout: 60_000 })("sessions: the list", (it) => {
  it.effect("pages newest first through the cursor, ties broken by id, each session once, as stored", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice, bob } = yield* twoUsers(url)
      const prefix = `l${Date.now().toString(36)}`
      // Two pairs share a timestamp to the millisecond; ids decide inside a pair.
      yield* insertSession(alice.id, `${prefix}a`, "2026-11-20T10:00:00.000Z", 1)
      yield* insertSession(alice.id, `${prefix}b`, "2026-11-21T10:00:00.123Z", 3, {
        status: "failed",
        errorCode: "OCR_FAILED",
        completedAt: "2026-11-21T10:00:05.000Z"
      })
      yield* insertSession(alice.id, `${prefix}c`, "2026-11-21T10:00:00.123Z", 2)
      yield* insertSession(alice.id, `${prefix}d`, "2026-11-22T10:00:00.000Z", 0, {
        status: "processing",
        phase: "ocr"
      })
      yield* insertSession(alice.id, `${prefix}e`, "2026-11-22T10:00:00.000Z", 1)
      yield* insertSession(bob.id, `${prefix}z`, "2026-11-23T10:00:00.000Z", 1)

      const pages: Array<ReadonlyArray<Summary>> = []
      let cursor: string | null = null
      do {
        const query: string = cursor === null ? "limit=2" : `limit=2&cursor=${cursor}`
        const res = yield* http(`${url}/api/v1/sessions?${query}`, { headers: alice.headers })
        expect(res.status).toBe(200)
        const page = (res.body as { data: { items: ReadonlyArray<Summary>; nextCursor: string | null } }).data
        pages.push(page.items)
        cursor = page.nextCursor
      } while (cursor !== null && pages.length < 10)

      expect(pages.map((page) => page.map((item) => item.id))).toEqual([
        [`${prefix}e`, `${prefix}d`],
        [`${prefix}c`, `${prefix}b`],
        [`${prefix}a`]
      ])
      const all = pages.flat()
      expect(all.map((item) => item.imageCount)).toEqual([1, 0, 2, 3, 1])
      expect(all[1]).toMatchObject({ status: "processing", phase: "ocr", completedAt: null })
      expect(all[3]).toEqual({
        id: `${prefix}b`,
        matchId: null,
        status: "failed",
        phase: null,
        errorCode: "OCR_FAILED",
        tone: "witty",
        language: "fr",
        imageCount: 3,
        createdAt: "2026-11-21T10:00:00.123Z",
        completedAt: "2026-11-21T10:00:05.000Z"
      })

      const garbled = yield* http(`${url}/api/v1/sessions?cursor=bm90LWEtY3Vyc29y`, { headers: alice.headers })
      expect(garbled.status).toBe(400)
      expect(garbled.body).toMatchObject({ success: false, error: { code: "VALIDATION_ERROR" } })
    })
  )
})
