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
 * A transaction of the test's own, holding what `statements` lock (a table, rows) until `release`
 * or the end of the scope: what a server's statement then waits on, to make a race deterministic.
 */
export const holdingLocks = (...statements: ReadonlyArray<string>) =>
  Effect.map(
    Effect.acquireRelease(
      Effect.promise(async () => {
        const client = new pg.Client({ connectionString: testDatabaseUrl() })
        await client.connect()
        await client.query("BEGIN")
        for (const statement of statements) await client.query(statement)
        return client
      }),
      (client) => Effect.promise(() => client.end())
    ),
    (client) => ({ release: Effect.asVoid(Effect.promise(() => client.query("ROLLBACK"))) })
  )

/** Until `count` statements wait for a lock on the table `relation`. */
export const awaitWaitingOn = (relation: string, count: number) =>
  eventually(
    sql<{ n: number }>("SELECT count(*)::int AS n FROM pg_locks WHERE relation = $1::regclass AND NOT granted", [
      relation
    ]),
    (rows) => rows[0]?.n === count,
    `${count} statement(s) waiting on ${relation}`
  )
