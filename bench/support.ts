/** What the benchmarks share: a free port, and a fresh migrated PostgreSQL database dropped afterwards. */
import { randomBytes } from "node:crypto"
import { createServer } from "node:net"
import pg from "pg"
import { applyMigrations, migrationsDir, pgExecutor } from "../src/core/db/migrations.ts"

export const adminUrl =
  process.env["BENCH_DATABASE_ADMIN_URL"] ??
  process.env["TEST_DATABASE_ADMIN_URL"] ??
  "postgresql://postgres@127.0.0.1:5432/postgres"

export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

export const withClient = async <A>(connectionString: string, run: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString })
  await client.connect()
  try {
    return await run(client)
  } finally {
    await client.end()
  }
}

export interface BenchDatabase {
  readonly url: string
  readonly drop: () => Promise<void>
}

/** A new database from `adminUrl` with every migration applied; `drop` removes it (connections included). */
export const freshDatabase = async (label: string): Promise<BenchDatabase> => {
  const name = `wingmate_bench_${label}_${randomBytes(4).toString("hex")}`
  await withClient(adminUrl, (admin) => admin.query(`CREATE DATABASE "${name}"`))
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  await withClient(url.toString(), (client) => applyMigrations(pgExecutor(client), migrationsDir))
  return {
    url: url.toString(),
    drop: () =>
      withClient(adminUrl, (admin) => admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => {})
  }
}
