/**
 * `isConnectionLost` on real failures of the Prisma client on this machine's PostgreSQL: a query
 * whose connection is terminated (`pg_terminate_backend`, as an administrator or a failover
 * does), and a server that cannot be reached, are outages (the HTTP plumbing answers 503); a
 * query PostgreSQL itself refuses is not. The same client then works again without a restart.
 */
import { expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { Db, DbError, isConnectionLost } from "../../../src/core/db/db.ts"
import { sql, testDatabaseUrl } from "../../support/database.ts"
import { eventually } from "../openers/support.ts"

const applicationName = `wm-test-lost-${randomBytes(4).toString("hex")}`
const named = (url: string) => {
  const parsed = new URL(url)
  parsed.searchParams.set("application_name", applicationName)
  return parsed.toString()
}

const failureOf = <A>(exit: Exit.Exit<A, DbError>): DbError => {
  if (Exit.isSuccess(exit)) throw new Error("expected the query to fail")
  const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
  if (!(error instanceof DbError)) throw new Error(`expected a DbError, got ${String(exit.cause)}`)
  return error
}

const withDb = <A, E>(url: string, use: (db: Db["Type"]) => Effect.Effect<A, E>) =>
  Effect.flatMap(Db, use).pipe(Effect.provide(Db.postgres({ url: Redacted.make(url), poolMax: 2, migrate: false })))

it.effect(
  "a query on a terminated connection is a lost connection; the client then serves again",
  () =>
    withDb(named(testDatabaseUrl()), (db) =>
      Effect.gen(function* () {
        const running = yield* Effect.fork(Effect.exit(db.query("sleep", (c) => c.$queryRaw`SELECT pg_sleep(10)`)))
        // Terminated once the query is running on the server.
        yield* eventually(
          sql<{ terminated: boolean }>(
            `SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
             WHERE application_name = $1 AND state = 'active' AND pid <> pg_backend_pid()`,
            [applicationName]
          ),
          (rows) => rows.some((row) => row.terminated),
          "the running query's backend to be terminated"
        )
        const error = failureOf(yield* Fiber.join(running))
        expect(error.operation).toBe("sleep")
        expect(isConnectionLost(error)).toBe(true)

        const refused = failureOf(yield* Effect.exit(db.query("syntax", (c) => c.$executeRawUnsafe("SELEC 1"))))
        expect(isConnectionLost(refused)).toBe(false)

        yield* db.ping
      })
    ),
  30_000
)

it.effect(
  "a server that cannot be reached is a lost connection",
  () =>
    Effect.gen(function* () {
      const url = new URL(testDatabaseUrl())
      url.port = "1"
      const exit = yield* Effect.exit(withDb(url.toString(), () => Effect.void))
      expect(exit._tag).toBe("Failure")
      expect(isConnectionLost(failureOf(exit))).toBe(true)
    }),
  30_000
)
