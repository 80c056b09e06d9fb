/** The integration suite's PostgreSQL database, created fresh and migrated by the global setup. */
import { Redacted } from "effect"
import { inject } from "vitest"
import { Db } from "../../src/core/db/db.ts"

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string
  }
}

export const testDatabaseUrl = () => inject("databaseUrl")

export const TestDb = () => Db.postgres({ url: Redacted.make(testDatabaseUrl()), poolMax: 4, migrate: false })
