/** The integration suite's PostgreSQL database, created fresh and migrated by the global setup. */
import { Effect, Redacted } from "effect"
import pg from "pg"
import { inject } from "vitest"
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
