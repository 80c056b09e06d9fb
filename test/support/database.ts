/** The integration suite's PostgreSQL database, created fresh and migrated by the global setup. */
import { Effect, Redacted } from "effect"
import pg from "pg"
import { inject } from "vitest"
import { eventually } from "./eventually.ts"
import { Db } from "../../src/core/db/db.ts"

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string
  }
}

export const testDatabaseUrl = () => inject("databaseUrl")

export const TestDb = () => Db.postgres({ url: Redacted.make(testDatabaseUrl()), poolMax: 4, migrate: false })

/** Reads rows straight from the test database, to assert what the API wrote. */
export const sql = <Row extends Record<string, unknown> = Record<string, unknown>>(
  text: string,
  params: ReadonlyArray<unknown> = []
) =>
  Effect.promise(async () => {
    const client = new pg.Client({ connectionString: testDatabaseUrl() })
    await client.connect()
    try {
      const result = await client.query<Row>(text, [...params])
      return result.rows
    } finally {
      await client.end()
    }
  })

/**
 * A transaction of the test's own, holding what `statement` locks (a table, rows) until `release`
 * (rolled back), `commit`, or the end of the scope: what a server's statement then waits on, to
 * make a race deterministic.
 */
export const holdingLocks = (statement: string, params: ReadonlyArray<unknown> = []) =>
  Effect.map(
    Effect.acquireRelease(
      Effect.promise(async () => {
        const client = new pg.Client({ connectionString: testDatabaseUrl() })
        await client.connect()
        await client.query("BEGIN")
        await client.query(statement, [...params])
        return client
      }),
      (client) => Effect.promise(() => client.end())
    ),
    (client) => ({
      release: Effect.asVoid(Effect.promise(() => client.query("ROLLBACK"))),
      commit: Effect.asVoid(Effect.promise(() => client.query("COMMIT")))
    })
  )

/** Until `count` statements on the test database wait for a lock (a table's, a row's). */
export const awaitLockWaits = (count: number) =>
  eventually(
    sql<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    ),
    (rows) => rows[0]?.n === count,
    `${count} statement(s) waiting for a lock`
  )
