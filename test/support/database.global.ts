/**
 * Global setup of the integration suite: a dedicated PostgreSQL database, dropped and created
 * fresh, migrated from prisma/migrations, and dropped again at the end.
 * TEST_DATABASE_ADMIN_URL points at a database to issue CREATE/DROP from (default: local `postgres`).
 */
import pg from "pg"
import type { TestProject } from "vitest/node"
import { applyMigrations, migrationsDir, pgExecutor } from "../../src/core/db/migrations.ts"

const adminUrl = process.env["TEST_DATABASE_ADMIN_URL"] ?? "postgresql://postgres@127.0.0.1:5432/postgres"
const databaseName = `wingmate_test_${process.pid}`

const withClient = async <A>(connectionString: string, run: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString })
  await client.connect()
  try {
    return await run(client)
  } finally {
    await client.end()
  }
}

export default async function setup(project: TestProject) {
  await withClient(adminUrl, async (admin) => {
    await admin.query(`DROP DATABASE IF EXISTS "${databaseName}" WITH (FORCE)`)
    await admin.query(`CREATE DATABASE "${databaseName}"`)
  })
  const url = new URL(adminUrl)
  url.pathname = `/${databaseName}`
  await withClient(url.toString(), (client) => applyMigrations(pgExecutor(client), migrationsDir))
  project.provide("databaseUrl", url.toString())
  return async () => {
    await withClient(adminUrl, (admin) => admin.query(`DROP DATABASE IF EXISTS "${databaseName}" WITH (FORCE)`))
  }
}
