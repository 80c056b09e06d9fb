/**
 * The OCR cache (`ocr_results`) and session deletion, at the repository, on the real PostgreSQL:
 * a read is cached only while its session exists. (That deleting a session takes the cached reads
 * of its screenshots with it, and the screenshot is read again, is in sessions.test.ts.)
 */
import { expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { randomBytes } from "node:crypto"
import { SessionsRepo } from "../../../src/modules/sessions/sessions.repo.ts"
import { sql, TestDb } from "../../support/database.ts"

const TRANSCRIPT = { messages: [{ sender: "them", text: "Free on Saturday?", time: null, confidence: 0.9 }] }

/** A user with one session (no image), written straight to the tables. */
const aSession = () =>
  Effect.gen(function* () {
    const suffix = randomBytes(6).toString("hex")
    const userId = `u${suffix}`
    const sessionId = `s${suffix}`
    yield* sql("INSERT INTO users (id, clerk_id, updated_at) VALUES ($1, $2, now())", [userId, `user_${suffix}`])
    yield* sql(
      "INSERT INTO sessions (id, user_id, tone, language, updated_at) VALUES ($1, $2, 'playful', 'en', now())",
      [sessionId, userId]
    )
    return { userId, sessionId }
  })

const cachedOf = (userId: string) => sql("SELECT content_hash FROM ocr_results WHERE user_id = $1", [userId])

const layer = SessionsRepo.Default.pipe(Layer.provide(TestDb()))

it.effect("a read is cached while its session exists, and not once the session is deleted", () =>
  Effect.gen(function* () {
    const repo = yield* SessionsRepo
    const { userId, sessionId } = yield* aSession()
    yield* repo.cacheOcr(sessionId, userId, "h1", TRANSCRIPT, "vision:gpt-4o")
    expect(yield* cachedOf(userId)).toEqual([{ content_hash: "h1" }])

    expect(yield* repo.remove(userId, sessionId)).toBe(true)
    // A read that ends after the deletion (a worker still reading) is not cached.
    yield* repo.cacheOcr(sessionId, userId, "h2", TRANSCRIPT, "vision:gpt-4o")
    // h1 stays: it is no image of this session (none is recorded here).
    expect(yield* cachedOf(userId)).toEqual([{ content_hash: "h1" }])
    expect(yield* repo.remove(userId, sessionId)).toBe(false)
  }).pipe(Effect.provide(layer))
)
