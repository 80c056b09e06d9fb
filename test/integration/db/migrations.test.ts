/**
 * The offline migration runner against this machine's PostgreSQL (a throwaway database per test)
 * and an in-memory PGlite: Prisma-shaped `_prisma_migrations` rows, idempotent reruns, edited and
 * failed migrations reported, and Prisma's own schema engine reading the result the same way.
 */
import { createHash, randomBytes } from "node:crypto"
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import path from "node:path"
import { PGlite } from "@electric-sql/pglite"
import { PrismaPg } from "@prisma/adapter-pg"
import pg from "pg"
import { afterAll, describe, expect, it } from "vitest"
import {
  applyMigrations,
  diagnoseWithPrismaEngine,
  markMigrationRolledBack,
  migrationStatus,
  migrationsDir,
  MigrationError,
  pgExecutor,
  pgliteExecutor,
  readMigrationRows,
  readMigrations,
  type PrismaEngineDiagnosis,
  type SqlExecutor
} from "../../../src/core/db/migrations.ts"

const TIMEOUT = 60_000
const adminUrl = process.env["TEST_DATABASE_ADMIN_URL"] ?? "postgresql://postgres@127.0.0.1:5432/postgres"
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

/** A database under test: the executor, Prisma's view of it, and how to dispose of it. */
interface TestDatabase {
  readonly db: SqlExecutor
  readonly prismaDiagnosis: (dir: string) => Promise<PrismaEngineDiagnosis>
  readonly close: () => Promise<void>
}

const withAdmin = async <A>(run: (admin: pg.Client) => Promise<A>): Promise<A> => {
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  try {
    return await run(admin)
  } finally {
    await admin.end()
  }
}

/** A fresh `wingmate_mig_<random>` database, through a pg Client (or a Pool). */
const postgresDatabase = async (kind: "client" | "pool"): Promise<TestDatabase> => {
  const name = `wingmate_mig_${randomBytes(6).toString("hex")}`
  await withAdmin((admin) => admin.query(`CREATE DATABASE "${name}"`))
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  const connectionString = url.toString()
  const connection = kind === "pool" ? new pg.Pool({ connectionString, max: 3 }) : new pg.Client({ connectionString })
  if (connection instanceof pg.Client) await connection.connect()
  return {
    db: pgExecutor(connection),
    prismaDiagnosis: (dir) => diagnoseWithPrismaEngine(new PrismaPg({ connectionString }), dir),
    close: async () => {
      await connection.end()
      await withAdmin((admin) => admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`))
    }
  }
}

const pgliteDatabase = async (): Promise<TestDatabase> => {
  const pglite = await PGlite.create()
  return {
    db: pgliteExecutor(pglite),
    prismaDiagnosis: (dir) => diagnoseWithPrismaEngine(pglite, dir),
    close: () => pglite.close()
  }
}

const temporaryDirs: Array<string> = []
afterAll(async () => {
  await Promise.all(temporaryDirs.map((dir) => rm(dir, { recursive: true, force: true })))
})

/** A copy of prisma/migrations plus extra migrations, to edit freely. */
const migrationsCopy = async (extra: Readonly<Record<string, string>> = {}): Promise<string> => {
  const dir = await mkdtemp(path.join(tmpdir(), "wingmate-migrations-"))
  temporaryDirs.push(dir)
  await cp(migrationsDir, dir, { recursive: true })
  for (const [name, sql] of Object.entries(extra)) {
    await mkdir(path.join(dir, name))
    await writeFile(path.join(dir, name, "migration.sql"), sql)
  }
  return dir
}

const fileChecksum = async (dir: string, name: string) =>
  createHash("sha256")
    .update(await readFile(path.join(dir, name, "migration.sql")))
    .digest("hex")

const columnsOf = async (db: SqlExecutor, table: string) =>
  (
    await db.query(
      "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
      [table]
    )
  ).map((row) => row["column_name"])

const rejection = async (promise: Promise<unknown>): Promise<MigrationError> => {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e
  )
  if (!(error instanceof MigrationError)) throw new Error(`expected a MigrationError, got ${String(error)}`)
  return error
}

const withDatabase = async (open: () => Promise<TestDatabase>, run: (t: TestDatabase) => Promise<void>) => {
  const t = await open()
  try {
    await run(t)
  } finally {
    await t.close()
  }
}

const backends: ReadonlyArray<readonly [string, () => Promise<TestDatabase>]> = [
  ["PostgreSQL (pg Client)", () => postgresDatabase("client")],
  ["PGlite (in memory)", pgliteDatabase]
]

describe.each(backends)("migrations on %s", (_name, open) => {
  it(
    "applies the folder with Prisma's bookkeeping; a rerun is a no-op; Prisma's engine agrees",
    () =>
      withDatabase(open, async ({ db, prismaDiagnosis }) => {
        const onDisk = await readMigrations(migrationsDir)
        expect(onDisk.length).toBeGreaterThan(0)

        const first = await applyMigrations(db, migrationsDir)
        expect(first.applied).toEqual(onDisk.map((m) => m.name))
        expect(await columnsOf(db, "users")).toEqual(
          expect.arrayContaining(["id", "clerk_id", "email", "first_name", "last_name", "created_at", "updated_at"])
        )
        expect(await columnsOf(db, "_prisma_migrations")).toEqual([
          "id",
          "checksum",
          "finished_at",
          "migration_name",
          "logs",
          "rolled_back_at",
          "started_at",
          "applied_steps_count"
        ])

        const rows = await readMigrationRows(db)
        expect(rows.map((r) => r.migrationName)).toEqual(onDisk.map((m) => m.name))
        for (const row of rows) {
          expect(row.checksum).toBe(await fileChecksum(migrationsDir, row.migrationName))
          expect(row.id).toMatch(UUID)
          expect(row.finishedAt).toBeInstanceOf(Date)
          expect(row.finishedAt?.getTime()).toBeGreaterThanOrEqual(row.startedAt.getTime())
          expect(row.logs).toBeNull()
          expect(row.rolledBackAt).toBeNull()
          expect(row.appliedStepsCount).toBe(1)
        }

        const second = await applyMigrations(db, migrationsDir)
        expect(second.applied).toEqual([])
        expect(await readMigrationRows(db)).toEqual(rows)

        expect(await migrationStatus(db, migrationsDir)).toEqual({
          hasMigrationsTable: true,
          applied: onDisk.map((m) => m.name),
          pending: [],
          mismatched: [],
          failed: [],
          missingFromDisk: []
        })
        expect(await prismaDiagnosis(migrationsDir)).toEqual({
          hasMigrationsTable: true,
          editedMigrationNames: [],
          failedMigrationNames: [],
          history: null
        })
      }),
    TIMEOUT
  )

  it(
    "reports an edited (checksum-mismatched) migration in status and refuses to apply",
    () =>
      withDatabase(open, async ({ db, prismaDiagnosis }) => {
        const status0 = await migrationStatus(db, migrationsDir)
        expect(status0.hasMigrationsTable).toBe(false)
        expect(status0.applied).toEqual([])
        const [init] = status0.pending
        if (init === undefined) throw new Error("no migration in prisma/migrations")

        await applyMigrations(db, migrationsDir)
        const dir = await migrationsCopy({
          "29990101000000_add_nickname": 'ALTER TABLE "users" ADD COLUMN "nickname" TEXT;\n'
        })
        await writeFile(path.join(dir, init, "migration.sql"), "-- edited after it was applied\n", { flag: "a" })

        const status = await migrationStatus(db, dir)
        expect(status.mismatched).toEqual([
          {
            name: init,
            fileChecksum: await fileChecksum(dir, init),
            databaseChecksum: await fileChecksum(migrationsDir, init)
          }
        ])
        expect(status.pending).toEqual(["29990101000000_add_nickname"])
        expect((await prismaDiagnosis(dir)).editedMigrationNames).toEqual([init])

        const error = await rejection(applyMigrations(db, dir))
        expect(error.code).toBe("ChecksumMismatch")
        expect(error.migrations).toEqual([init])
        // Nothing was applied.
        expect(await columnsOf(db, "users")).not.toContain("nickname")

        // The same when the database side is tampered with instead of the file.
        await db.query("UPDATE _prisma_migrations SET checksum = $1 WHERE migration_name = $2", ["0".repeat(64), init])
        expect((await migrationStatus(db, migrationsDir)).mismatched.map((m) => m.name)).toEqual([init])
        expect((await rejection(applyMigrations(db, migrationsDir))).code).toBe("ChecksumMismatch")
      }),
    TIMEOUT
  )

  it(
    "applies pending migrations; a failing one is rolled back, recorded as failed and blocks until resolved",
    () =>
      withDatabase(open, async ({ db, prismaDiagnosis }) => {
        await applyMigrations(db, migrationsDir)
        const good = "29990101000000_add_nickname"
        const bad = "29990102000000_broken"
        const dir = await migrationsCopy({
          [good]: 'ALTER TABLE "users" ADD COLUMN "nickname" TEXT;\n',
          [bad]: 'ALTER TABLE "users" ADD COLUMN "half_done" TEXT;\nSELECT 1 / 0;\n'
        })
        expect((await migrationStatus(db, dir)).pending).toEqual([good, bad])

        const failure = await rejection(applyMigrations(db, dir))
        expect(failure.code).toBe("MigrationFailed")
        expect(failure.migrations).toEqual([bad])
        expect(failure.message).toContain("division by zero")
        const columns = await columnsOf(db, "users")
        expect(columns).toContain("nickname")
        expect(columns).not.toContain("half_done") // its transaction was rolled back

        const failedRow = (await readMigrationRows(db)).find((r) => r.migrationName === bad)
        expect(failedRow).toMatchObject({ finishedAt: null, rolledBackAt: null, appliedStepsCount: 0 })
        expect(failedRow?.checksum).toBe(await fileChecksum(dir, bad))
        expect(failedRow?.logs).toContain("division by zero")

        const status = await migrationStatus(db, dir)
        expect(status.failed.map((f) => f.name)).toEqual([bad])
        expect(status.pending).toEqual([])
        expect((await prismaDiagnosis(dir)).failedMigrationNames).toEqual([bad])
        expect((await rejection(applyMigrations(db, dir))).code).toBe("FailedMigrations")

        // Fix the file, mark the failure rolled back (prisma migrate resolve --rolled-back), redeploy.
        await writeFile(path.join(dir, bad, "migration.sql"), 'ALTER TABLE "users" ADD COLUMN "half_done" TEXT;\n')
        expect((await rejection(markMigrationRolledBack(db, good))).code).toBe("NotFailed")
        await markMigrationRolledBack(db, bad)
        expect((await applyMigrations(db, dir)).applied).toEqual([bad])
        expect(await columnsOf(db, "users")).toContain("half_done")
        const final = await migrationStatus(db, dir)
        expect(final.failed).toEqual([])
        expect(final.pending).toEqual([])
        expect(final.applied.slice(-2)).toEqual([good, bad])
        expect(await prismaDiagnosis(dir)).toMatchObject({
          editedMigrationNames: [],
          failedMigrationNames: [],
          history: null
        })
      }),
    TIMEOUT
  )
})

describe("migrations through a pg Pool", () => {
  it(
    "applies and reruns as a no-op",
    () =>
      withDatabase(
        () => postgresDatabase("pool"),
        async ({ db }) => {
          const names = (await readMigrations(migrationsDir)).map((m) => m.name)
          expect((await applyMigrations(db, migrationsDir)).applied).toEqual(names)
          expect((await applyMigrations(db, migrationsDir)).applied).toEqual([])
          expect((await migrationStatus(db, migrationsDir)).applied).toEqual(names)
        }
      ),
    TIMEOUT
  )
})
