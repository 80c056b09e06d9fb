/** Readiness reflects the real dependencies: PostgreSQL and, when configured, Redis. */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import pg from "pg"
import { Db } from "../../../src/core/db/db.ts"
import { Redis } from "../../../src/core/redis.ts"
import { TestDb, testDatabaseUrl } from "../../support/database.ts"
import { http } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"

const adminQuery = (sql: string) =>
  Effect.promise(async () => {
    const admin = new pg.Client({ connectionString: testDatabaseUrl() })
    await admin.connect()
    try {
      await admin.query(sql)
    } finally {
      await admin.end()
    }
  })

describe("health probes", () => {
  it.live("live and ready answer 200 with PostgreSQL and Redis up", () =>
    Effect.gen(function* () {
      const server = testServer({
        db: TestDb(),
        redis: Redis.layer,
        config: { REDIS_URL: process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379" }
      })
      yield* Effect.gen(function* () {
        const url = yield* baseUrl
        const live = yield* http(`${url}/health/live`)
        expect(live.status).toBe(200)
        expect(live.body).toMatchObject({ success: true, data: { status: "ok" } })
        const ready = yield* http(`${url}/health/ready`)
        expect(ready.status).toBe(200)
        expect(ready.body).toEqual({
          success: true,
          data: { status: "ready", checks: { database: "ok", redis: "ok" } }
        })
      }).pipe(Effect.provide(server))
    })
  )

  it.live("ready answers 503 when the configured Redis cannot be reached", () =>
    Effect.gen(function* () {
      const server = testServer({ db: TestDb(), redis: Redis.layer, config: { REDIS_URL: "redis://127.0.0.1:1" } })
      yield* Effect.gen(function* () {
        const url = yield* baseUrl
        const ready = yield* http(`${url}/health/ready`)
        expect(ready.status).toBe(503)
        expect(ready.body).toEqual({
          success: false,
          error: {
            code: "SERVICE_UNAVAILABLE",
            message: "A dependency is not reachable",
            details: { checks: { database: "ok", redis: "failed" } }
          }
        })
        const live = yield* http(`${url}/health/live`)
        expect(live.status).toBe(200)
      }).pipe(Effect.provide(server))
    })
  )

  it.live("ready answers 503 once the database is gone, and live stays 200", () =>
    Effect.gen(function* () {
      const name = `wingmate_ready_${process.pid}_${Date.now()}`
      yield* adminQuery(`CREATE DATABASE "${name}"`)
      const url = new URL(testDatabaseUrl())
      url.pathname = `/${name}`
      const db = Db.postgres({ url: Redacted.make(url.toString()), poolMax: 2, migrate: false })
      yield* Effect.gen(function* () {
        const base = yield* baseUrl
        expect((yield* http(`${base}/health/ready`)).status).toBe(200)
        yield* adminQuery(`DROP DATABASE "${name}" WITH (FORCE)`)
        const ready = yield* http(`${base}/health/ready`)
        expect(ready.status).toBe(503)
        expect(ready.body).toMatchObject({
          success: false,
          error: { code: "SERVICE_UNAVAILABLE", details: { checks: { database: "failed", redis: "not_configured" } } }
        })
        expect((yield* http(`${base}/health/live`)).status).toBe(200)
      }).pipe(Effect.provide(testServer({ db })))
    })
  )
})
