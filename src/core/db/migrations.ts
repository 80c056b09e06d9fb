/**
 * Prisma migrations without Prisma's native schema engine (which cannot be downloaded here).
 *
 * `prisma/migrations` stays in Prisma's exact format (`<YYYYMMDDHHMMSS>_<name>/migration.sql` plus
 * `migration_lock.toml`), and `_prisma_migrations` gets the rows `prisma migrate deploy` writes, so
 * a host with internet can keep using plain `prisma migrate deploy` on the same database.
 *
 * - `readMigrations`, `migrationStatus`, `applyMigrations`, `markMigrationRolledBack`: plain SQL
 *   through a tiny `SqlExecutor` (`pgExecutor` for a `pg` Client/Pool, `pgliteExecutor` for PGlite).
 * - `diffSchemaAgainstMigrations`: Prisma's schema engine compiled to WebAssembly
 *   (`@prisma/schema-engine-wasm`, a dev dependency, loaded lazily) with an in-memory PGlite as the
 *   shadow database. That package's API is internal and unversioned: it is only touched here.
 */
import { createHash, randomUUID } from "node:crypto"
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises"
import { createRequire } from "node:module"
import path from "node:path"
import { fileURLToPath } from "node:url"
import type { PGlite, PGliteInterface, Transaction as PGliteTransaction } from "@electric-sql/pglite"
import type {
  SqlDriverAdapter,
  SqlMigrationAwareDriverAdapterFactory,
  ErrorCapturingSqlMigrationAwareDriverAdapterFactory
} from "@prisma/driver-adapter-utils"
import type * as SchemaEngineWasm from "@prisma/schema-engine-wasm/schema_engine_bg"
import type { ClientBase, Pool } from "pg"

/** `prisma/migrations` of this repository. */
export const migrationsDir: string = fileURLToPath(new URL("../../../prisma/migrations", import.meta.url))
/** `prisma/schema.prisma` of this repository. */
export const schemaPath: string = fileURLToPath(new URL("../../../prisma/schema.prisma", import.meta.url))

// ---------------------------------------------------------------------------------------------
// Errors and results
// ---------------------------------------------------------------------------------------------

export type MigrationErrorCode =
  | "InvalidMigrationsDirectory" // unreadable folder, missing migration.sql, other provider in the lock file
  | "FailedMigrations" // unfinished rows in _prisma_migrations (Prisma's P3009)
  | "ChecksumMismatch" // an applied migration.sql was edited afterwards
  | "MigrationFailed" // a migration's SQL failed now; it was rolled back and recorded as failed
  | "NotFailed" // markMigrationRolledBack on a migration that is not in a failed state
  | "SchemaEngine" // the Wasm schema engine refused (bad schema, migration failing on the shadow db…)

export class MigrationError extends Error {
  override readonly name = "MigrationError"
  readonly code: MigrationErrorCode
  /** The migrations the error is about (may be empty). */
  readonly migrations: ReadonlyArray<string>

  constructor(code: MigrationErrorCode, message: string, migrations: ReadonlyArray<string> = [], cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause })
    this.code = code
    this.migrations = migrations
  }
}

/** One folder of the migrations directory. */
export interface Migration {
  /** Folder name, e.g. `20250101120000_init`: the `migration_name` in `_prisma_migrations`. */
  readonly name: string
  readonly sql: string
  /** sha256 hex of the bytes of `migration.sql`, as Prisma computes it. */
  readonly checksum: string
}

/** One row of `_prisma_migrations`. */
export interface MigrationRow {
  readonly id: string
  readonly checksum: string
  readonly finishedAt: Date | null
  readonly migrationName: string
  readonly logs: string | null
  readonly rolledBackAt: Date | null
  readonly startedAt: Date
  readonly appliedStepsCount: number
}

export interface ChecksumMismatch {
  readonly name: string
  /** Checksum of the file on disk now. */
  readonly fileChecksum: string
  /** Checksum recorded when it was applied. */
  readonly databaseChecksum: string
}

export interface FailedMigration {
  readonly name: string
  readonly logs: string | null
}

export interface MigrationStatus {
  readonly hasMigrationsTable: boolean
  /** On disk and finished in the database, in folder order. */
  readonly applied: ReadonlyArray<string>
  /** On disk, not yet in the database (failed ones are listed in `failed` instead). */
  readonly pending: ReadonlyArray<string>
  /** Applied, but `migration.sql` was edited since. */
  readonly mismatched: ReadonlyArray<ChecksumMismatch>
  /** Started and never finished (nor marked rolled back): blocks `deploy`, like Prisma's P3009. */
  readonly failed: ReadonlyArray<FailedMigration>
  /** Finished in the database but absent from the folder (Prisma's status reports these too). */
  readonly missingFromDisk: ReadonlyArray<string>
}

export interface ApplyResult {
  /** Migrations applied by this call, in order; empty when nothing was pending. */
  readonly applied: ReadonlyArray<string>
}

// ---------------------------------------------------------------------------------------------
// Executors
// ---------------------------------------------------------------------------------------------

export type SqlRow = Readonly<Record<string, unknown>>

/** The little a migration runner needs from a PostgreSQL connection. */
export interface SqlExecutor {
  /** One statement, `$1`-style parameters; the rows as plain objects. */
  readonly query: (sql: string, params?: ReadonlyArray<unknown>) => Promise<ReadonlyArray<SqlRow>>
  /** Simple-query protocol: any number of statements, no parameters (a whole migration.sql). */
  readonly exec: (sql: string) => Promise<void>
  /** Runs `body` on one connection between BEGIN and COMMIT (ROLLBACK when it throws). */
  readonly transaction: <A>(body: (tx: SqlExecutor) => Promise<A>) => Promise<A>
}

/** BEGIN, body, COMMIT on one client; ROLLBACK when the body throws (a failing ROLLBACK is reported). */
const inTransaction = async <A>(
  client: ClientBase,
  body: (tx: SqlExecutor) => Promise<A>,
  onRollbackFailure: (error: unknown) => void = () => undefined
): Promise<A> => {
  await client.query("BEGIN")
  try {
    const result = await body(clientExecutor(client, true))
    await client.query("COMMIT")
    return result
  } catch (error) {
    await client.query("ROLLBACK").catch(onRollbackFailure)
    throw error
  }
}

const clientExecutor = (client: ClientBase, insideTransaction: boolean): SqlExecutor => {
  const self: SqlExecutor = {
    query: async (sql, params) =>
      (await client.query<SqlRow>(sql, params === undefined ? undefined : [...params])).rows,
    exec: async (sql) => {
      await client.query(sql)
    },
    transaction: (body) => (insideTransaction ? body(self) : inTransaction(client, body))
  }
  return self
}

/**
 * A `pg` Client (or PoolClient) or Pool. With a Pool each transaction checks one client out, so
 * BEGIN, the migration and COMMIT share a connection.
 */
export const pgExecutor = (db: Pool | ClientBase): SqlExecutor => {
  if (!("totalCount" in db)) return clientExecutor(db, false)
  const pool = db
  return {
    query: async (sql, params) => (await pool.query<SqlRow>(sql, params === undefined ? undefined : [...params])).rows,
    exec: async (sql) => {
      await pool.query(sql)
    },
    transaction: async (body) => {
      const client = await pool.connect()
      let broken: Error | undefined
      try {
        return await inTransaction(client, body, (error) => {
          broken = error instanceof Error ? error : new Error(String(error))
        })
      } finally {
        // A client whose ROLLBACK failed is discarded rather than handed back to the pool.
        client.release(broken)
      }
    }
  }
}

const pgliteTransactionExecutor = (tx: PGliteTransaction): SqlExecutor => {
  const self: SqlExecutor = {
    query: async (sql, params) => (await tx.query<SqlRow>(sql, params === undefined ? undefined : [...params])).rows,
    exec: async (sql) => {
      await tx.exec(sql)
    },
    transaction: (body) => body(self)
  }
  return self
}

/** A PGlite instance (in memory or on disk). */
export const pgliteExecutor = (db: PGliteInterface): SqlExecutor => ({
  query: async (sql, params) => (await db.query<SqlRow>(sql, params === undefined ? undefined : [...params])).rows,
  exec: async (sql) => {
    await db.exec(sql)
  },
  transaction: (body) => db.transaction((tx) => body(pgliteTransactionExecutor(tx)))
})

// ---------------------------------------------------------------------------------------------
// The migrations folder
// ---------------------------------------------------------------------------------------------

export const MIGRATION_LOCK_FILE = "migration_lock.toml"
/** What Prisma writes to `migration_lock.toml` for PostgreSQL. */
export const MIGRATION_LOCK_CONTENT =
  '# Please do not edit this file manually\n# It should be added in your version-control system (e.g., Git)\nprovider = "postgresql"\n'

const sha256 = (data: string | Uint8Array): string => createHash("sha256").update(data).digest("hex")

/** Prisma's pre-2.x checksums were rendered without zero-padding each byte. */
const unpaddedSha256 = (data: string): string =>
  Array.from(createHash("sha256").update(data).digest(), (byte) => byte.toString(16)).join("")

/** Prisma's `script_matches_checksum`: exact, or after a CRLF/LF conversion, or the old unpadded form. */
export const checksumMatches = (sql: string, checksum: string): boolean =>
  [sql, sql.replaceAll("\r\n", "\n"), sql.replaceAll("\n", "\r\n")].some(
    (variant) => sha256(variant) === checksum || unpaddedSha256(variant) === checksum
  )

const readLockProvider = async (dir: string): Promise<string | undefined> => {
  const content = await readFile(path.join(dir, MIGRATION_LOCK_FILE), "utf8").catch(() => undefined)
  if (content === undefined) return undefined
  return /^\s*provider\s*=\s*"([^"]*)"/m.exec(content)?.[1]
}

/** The migrations on disk, in Prisma's order (folder names compared with `localeCompare`). */
export const readMigrations = async (dir: string): Promise<ReadonlyArray<Migration>> => {
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (error) {
    if (hasCode(error, "ENOENT")) return []
    throw new MigrationError("InvalidMigrationsDirectory", `cannot read ${dir}: ${errorMessage(error)}`, [], error)
  }
  const provider = await readLockProvider(dir)
  if (provider !== undefined && provider !== "postgresql") {
    throw new MigrationError(
      "InvalidMigrationsDirectory",
      `${path.join(dir, MIGRATION_LOCK_FILE)} says provider = "${provider}", expected "postgresql"`
    )
  }
  const names = entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort((a, b) => a.localeCompare(b))
  return Promise.all(
    names.map(async (name): Promise<Migration> => {
      const file = path.join(dir, name, "migration.sql")
      const bytes = await readFile(file).catch((error: unknown) => {
        throw new MigrationError("InvalidMigrationsDirectory", `cannot read ${file}: ${errorMessage(error)}`, [name])
      })
      return { name, sql: bytes.toString("utf8"), checksum: sha256(bytes) }
    })
  )
}

/** `add user profile` / `addUserProfile` / `add-user-profile` → `add_user_profile`. */
export const snakeCaseMigrationName = (name: string): string =>
  name
    .trim()
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_+|_+$/g, "")
    .slice(0, 200)

/** `YYYYMMDDHHMMSS` in UTC, as Prisma names migration folders. */
export const migrationTimestamp = (date: Date): string => date.toISOString().replace(/\D/g, "").slice(0, 14)

/**
 * Writes `<dir>/<timestamp>_<snake name>/migration.sql` (and `migration_lock.toml` if missing);
 * returns the folder name.
 */
export const writeMigration = async (
  dir: string,
  name: string,
  sql: string,
  date: Date = new Date()
): Promise<string> => {
  const snake = snakeCaseMigrationName(name)
  if (snake === "") throw new MigrationError("InvalidMigrationsDirectory", `"${name}" is not a usable migration name`)
  const folder = `${migrationTimestamp(date)}_${snake}`
  await mkdir(dir, { recursive: true })
  const lockFile = path.join(dir, MIGRATION_LOCK_FILE)
  if (!(await exists(lockFile))) await writeFile(lockFile, MIGRATION_LOCK_CONTENT)
  await mkdir(path.join(dir, folder))
  await writeFile(path.join(dir, folder, "migration.sql"), sql)
  return folder
}

// ---------------------------------------------------------------------------------------------
// _prisma_migrations
// ---------------------------------------------------------------------------------------------

/** The DDL of Prisma's schema engine (sql-schema-connector, PostgreSQL flavour). */
export const PRISMA_MIGRATIONS_TABLE_DDL = `CREATE TABLE _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
);`

/** The advisory lock key Prisma's engine takes around `migrate deploy`. */
const PRISMA_ADVISORY_LOCK = 72707369

const hasMigrationsTable = async (db: SqlExecutor): Promise<boolean> => {
  const rows = await db.query("SELECT to_regclass('_prisma_migrations') IS NOT NULL AS present")
  return rows[0]?.["present"] === true
}

const decodeRow = (row: SqlRow): MigrationRow => ({
  id: field(row, "id", asString),
  checksum: field(row, "checksum", asString),
  finishedAt: field(row, "finished_at", nullable(asDate)),
  migrationName: field(row, "migration_name", asString),
  logs: field(row, "logs", nullable(asString)),
  rolledBackAt: field(row, "rolled_back_at", nullable(asDate)),
  startedAt: field(row, "started_at", asDate),
  appliedStepsCount: field(row, "applied_steps_count", asInteger)
})

/** Every row of `_prisma_migrations` by `started_at` (empty when the table does not exist). */
export const readMigrationRows = async (db: SqlExecutor): Promise<ReadonlyArray<MigrationRow>> => {
  if (!(await hasMigrationsTable(db))) return []
  const rows = await db.query(
    `SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count
       FROM _prisma_migrations ORDER BY started_at ASC`
  )
  return rows.map(decodeRow)
}

const computeStatus = (
  migrations: ReadonlyArray<Migration>,
  rows: ReadonlyArray<MigrationRow>,
  tablePresent: boolean
): MigrationStatus => {
  const active = rows.filter((row) => row.rolledBackAt === null)
  const onDisk = new Set(migrations.map((m) => m.name))
  const applied: Array<string> = []
  const pending: Array<string> = []
  const mismatched: Array<ChecksumMismatch> = []
  for (const migration of migrations) {
    const forIt = active.filter((row) => row.migrationName === migration.name)
    const finished = forIt.find((row) => row.finishedAt !== null)
    if (finished !== undefined) {
      applied.push(migration.name)
      if (!checksumMatches(migration.sql, finished.checksum)) {
        mismatched.push({ name: migration.name, fileChecksum: migration.checksum, databaseChecksum: finished.checksum })
      }
    } else if (forIt.length === 0) {
      pending.push(migration.name)
    }
  }
  const failed = active
    .filter((row) => row.finishedAt === null)
    .map((row): FailedMigration => ({ name: row.migrationName, logs: row.logs }))
  const missingFromDisk = [
    ...new Set(
      active.filter((row) => row.finishedAt !== null && !onDisk.has(row.migrationName)).map((row) => row.migrationName)
    )
  ]
  return { hasMigrationsTable: tablePresent, applied, pending, mismatched, failed, missingFromDisk }
}

/** Applied / pending / edited / failed migrations of a database relative to `dir`. Read-only. */
export const migrationStatus = async (db: SqlExecutor, dir: string): Promise<MigrationStatus> => {
  const migrations = await readMigrations(dir)
  const tablePresent = await hasMigrationsTable(db)
  return computeStatus(migrations, tablePresent ? await readMigrationRows(db) : [], tablePresent)
}

const failedError = (failed: ReadonlyArray<FailedMigration>): MigrationError =>
  new MigrationError(
    "FailedMigrations",
    `failed migration${failed.length > 1 ? "s" : ""} in the database (${failed.map((f) => f.name).join(", ")}); ` +
      "new migrations are not applied until it is fixed and marked rolled back (node scripts/db.ts resolve --rolled-back <name>)",
    failed.map((f) => f.name)
  )

const mismatchError = (mismatched: ReadonlyArray<ChecksumMismatch>): MigrationError =>
  new MigrationError(
    "ChecksumMismatch",
    `applied migration${mismatched.length > 1 ? "s were" : " was"} edited afterwards (checksum differs): ` +
      `${mismatched.map((m) => m.name).join(", ")}; restore the file${mismatched.length > 1 ? "s" : ""} and put the change in a new migration`,
    mismatched.map((m) => m.name)
  )

const failureLogs = (name: string, error: unknown): string => {
  const sqlError = sqlErrorFields(error)
  return [
    "A migration failed to apply. New migrations cannot be applied before the error is recovered from. " +
      "Read more about how to resolve migration issues in a production database: https://pris.ly/d/migrate-resolve",
    `Migration name: ${name}`,
    ...(sqlError?.code === undefined ? [] : [`Database error code: ${sqlError.code}`]),
    `Database error:\n${errorMessage(error)}`
  ].join("\n\n")
}

/**
 * Applies the pending migrations of `dir` in order, each in its own transaction together with its
 * `_prisma_migrations` row, the row `prisma migrate deploy` writes (uuid id, sha256 checksum,
 * started/finished, `applied_steps_count` 1). The table is created with Prisma's DDL when missing.
 *
 * Refuses (MigrationError) before applying anything when the database has a failed migration or an
 * applied migration whose file was edited. A migration that fails now is rolled back and recorded
 * as failed (`finished_at` NULL, error in `logs`), like Prisma does, and the call rejects.
 * Rerunning when nothing is pending is a no-op. Safe against concurrent runs (Prisma's advisory lock).
 */
export const applyMigrations = async (db: SqlExecutor, dir: string): Promise<ApplyResult> => {
  const migrations = await readMigrations(dir)
  await db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [PRISMA_ADVISORY_LOCK])
    if (!(await hasMigrationsTable(tx))) await tx.exec(PRISMA_MIGRATIONS_TABLE_DDL)
  })
  const status = computeStatus(migrations, await readMigrationRows(db), true)
  if (status.failed.length > 0) throw failedError(status.failed)
  if (status.mismatched.length > 0) throw mismatchError(status.mismatched)

  const applied: Array<string> = []
  for (const migration of migrations.filter((m) => status.pending.includes(m.name))) {
    const startedAt = new Date()
    try {
      const didApply = await db.transaction(async (tx) => {
        await tx.query("SELECT pg_advisory_xact_lock($1)", [PRISMA_ADVISORY_LOCK])
        // Under the lock: another process may have applied (or failed) it meanwhile.
        const existing = (
          await tx.query(
            "SELECT finished_at FROM _prisma_migrations WHERE migration_name = $1 AND rolled_back_at IS NULL",
            [migration.name]
          )
        ).map((row) => field(row, "finished_at", nullable(asDate)))
        if (existing.some((finishedAt) => finishedAt === null)) {
          throw failedError([{ name: migration.name, logs: null }])
        }
        if (existing.length > 0) return false
        await tx.exec(migration.sql)
        await tx.query(
          `INSERT INTO _prisma_migrations
             (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count)
           VALUES ($1, $2, clock_timestamp(), $3, NULL, NULL, now(), 1)`,
          [randomUUID(), migration.checksum, migration.name]
        )
        return true
      })
      if (didApply) applied.push(migration.name)
    } catch (error) {
      if (error instanceof MigrationError) throw error
      // Prisma's failed-migration row, so that `deploy` (ours or Prisma's) stops here until resolved.
      const recorded = await db
        .query(
          `INSERT INTO _prisma_migrations
             (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count)
           VALUES ($1, $2, NULL, $3, $4, NULL, $5, 0)`,
          [randomUUID(), migration.checksum, migration.name, failureLogs(migration.name, error), startedAt]
        )
        .then(
          () => true,
          () => false
        )
      const code = sqlErrorFields(error)?.code
      throw new MigrationError(
        "MigrationFailed",
        `migration ${migration.name} failed${code === undefined ? "" : ` (SQLSTATE ${code})`}: ${errorMessage(error)}; ` +
          `it was rolled back${recorded ? " and recorded as failed" : " (recording the failure failed too)"}` +
          (applied.length > 0 ? `; applied before it: ${applied.join(", ")}` : ""),
        [migration.name],
        error
      )
    }
  }
  return { applied }
}

/**
 * `prisma migrate resolve --rolled-back <name>`: marks a failed migration as rolled back so that
 * `applyMigrations` tries it again. Rejects with `NotFailed` when it is not in a failed state.
 */
export const markMigrationRolledBack = async (db: SqlExecutor, name: string): Promise<void> => {
  const updated = (await hasMigrationsTable(db))
    ? await db.query(
        `UPDATE _prisma_migrations SET rolled_back_at = now()
          WHERE migration_name = $1 AND finished_at IS NULL AND rolled_back_at IS NULL RETURNING id`,
        [name]
      )
    : []
  if (updated.length === 0) {
    throw new MigrationError("NotFailed", `migration ${name} is not in a failed state in this database`, [name])
  }
}

// ---------------------------------------------------------------------------------------------
// Prisma's schema engine (WebAssembly)
// ---------------------------------------------------------------------------------------------

type EngineRuntime = typeof SchemaEngineWasm
type EngineClass = EngineRuntime["SchemaEngine"]
type Engine = SchemaEngineWasm.SchemaEngine

// Node has WebAssembly at run time; the project's libs (ES2023, no DOM) carry no types for it.
interface WasmModule {
  readonly __wasmModule: never
}
declare const WebAssembly: {
  compile(bytes: Uint8Array): Promise<WasmModule>
  instantiate(module: WasmModule, imports: Readonly<Record<string, object>>): Promise<{ readonly exports: object }>
}

// wasm-bindgen keeps module-level state, so the engine is instantiated once per process, even if
// this module is evaluated again (test runners): the loading promise lives on globalThis.
const ENGINE_KEY = Symbol.for("wingmate.db.schemaEngineWasm")
interface EngineHolder {
  readonly engineClass: Promise<EngineClass>
}
const isEngineHolder = (value: unknown): value is EngineHolder =>
  typeof value === "object" && value !== null && "engineClass" in value && value.engineClass instanceof Promise

const instantiateEngine = async (): Promise<EngineClass> => {
  // The engine reports panics through this global (set by Prisma's CLI in its own process).
  if (!Reflect.has(globalThis, "PRISMA_WASM_PANIC_REGISTRY")) {
    let message = ""
    Reflect.set(globalThis, "PRISMA_WASM_PANIC_REGISTRY", {
      set_message: (value: string) => {
        message = `RuntimeError: ${value}`
      },
      get: () => message
    })
  }
  const runtime: EngineRuntime = await import("@prisma/schema-engine-wasm/schema_engine_bg")
  const require = createRequire(import.meta.url)
  const wasmFile = path.join(
    path.dirname(require.resolve("@prisma/schema-engine-wasm/schema_engine_bg")),
    "schema_engine_bg.wasm"
  )
  const module = await WebAssembly.compile(await readFile(wasmFile))
  const instance = await WebAssembly.instantiate(module, { "./schema_engine_bg.js": runtime })
  runtime.__wbg_set_wasm(instance.exports)
  const start: unknown = Reflect.get(instance.exports, "__wbindgen_start")
  if (typeof start !== "function") throw new Error("@prisma/schema-engine-wasm: __wbindgen_start is missing")
  Reflect.apply(start, undefined, [])
  return runtime.SchemaEngine
}

const loadEngineClass = (): Promise<EngineClass> => {
  const existing: unknown = Reflect.get(globalThis, ENGINE_KEY)
  if (isEngineHolder(existing)) return existing.engineClass
  const engineClass = instantiateEngine()
  const holder: EngineHolder = { engineClass }
  Reflect.set(globalThis, ENGINE_KEY, holder)
  // A failed load is not cached.
  engineClass.catch(() => Reflect.deleteProperty(globalThis, ENGINE_KEY))
  return engineClass
}

/** The engine's errors carry a Rust span trace after the message; keep the message. */
const engineErrorMessage = (error: unknown): string => {
  if (error instanceof Error && error.name === "RuntimeError") {
    // A Rust panic: the message went to the panic registry.
    const registry: unknown = Reflect.get(globalThis, "PRISMA_WASM_PANIC_REGISTRY")
    const panic = typeof registry === "object" && registry !== null ? Reflect.get(registry, "get") : undefined
    if (typeof panic === "function") return `panic: ${String(Reflect.apply(panic, registry, []))}`
  }
  const message = errorMessage(error)
  const [firstPart] = message.split(/\n\s*0: schema_engine/)
  return (firstPart ?? message).trim()
}

const runEngine = async <A>(
  factory: ErrorCapturingSqlMigrationAwareDriverAdapterFactory,
  what: string,
  run: () => Promise<A>
): Promise<A> => {
  try {
    return await run()
  } catch (error) {
    // Errors thrown by JS adapter code come back as "External error id#<n>" (the registry's index).
    const id = /External error id#(\d+)/.exec(errorMessage(error))?.[1]
    const original = id === undefined ? undefined : factory.errorRegistry.consumeError(Number(id))?.error
    throw new MigrationError(
      "SchemaEngine",
      `schema engine (${what}): ${engineErrorMessage(original ?? error)}`,
      [],
      original ?? error
    )
  }
}

const withEngine = async <A>(
  adapterFactory: SqlMigrationAwareDriverAdapterFactory,
  datamodels: ReadonlyArray<SchemaFile> | undefined,
  use: (engine: Engine, factory: ErrorCapturingSqlMigrationAwareDriverAdapterFactory) => Promise<A>
): Promise<A> => {
  const [EngineClass, { bindMigrationAwareSqlAdapterFactory }] = await Promise.all([
    loadEngineClass(),
    import("@prisma/driver-adapter-utils")
  ])
  const factory = bindMigrationAwareSqlAdapterFactory(adapterFactory)
  const engine = await runEngine(factory, "start", () =>
    EngineClass.new(
      {
        datamodels:
          datamodels === undefined ? undefined : datamodels.map((file): [string, string] => [file.path, file.content])
      },
      () => undefined,
      factory
    )
  )
  try {
    return await use(engine, factory)
  } finally {
    engine.free()
  }
}

interface SchemaFile {
  readonly path: string
  readonly content: string
}

/** A `.prisma` file, or every `.prisma` file under a folder (multi-file schemas). */
const readSchemaFiles = async (schema: string): Promise<ReadonlyArray<SchemaFile>> => {
  const paths = (await stat(schema)).isDirectory()
    ? (await readdir(schema, { recursive: true }))
        .filter((file) => file.endsWith(".prisma"))
        .sort()
        .map((file) => path.join(schema, file))
    : [schema]
  return Promise.all(paths.map(async (file) => ({ path: file, content: await readFile(file, "utf8") })))
}

/** The engine's view of a migrations folder (what Prisma's CLI passes it). */
const migrationList = async (dir: string): Promise<SchemaEngineWasm.MigrationList> => {
  const migrations = await readMigrations(dir)
  const lock = await readFile(path.join(dir, MIGRATION_LOCK_FILE), "utf8").catch(() => null)
  return {
    baseDir: dir,
    // The engine needs the provider; a folder without a lock file is a PostgreSQL one here.
    lockfile: { path: MIGRATION_LOCK_FILE, content: lock ?? MIGRATION_LOCK_CONTENT },
    shadowDbInitScript: "",
    migrationDirectories: migrations.map((m) => ({
      path: m.name,
      migrationFile: { path: "migration.sql", content: { tag: "ok", value: m.sql } }
    }))
  }
}

const NO_FILTER: SchemaEngineWasm.SchemaFilter = { externalTables: [], externalEnums: [] }

/**
 * A migration-aware adapter factory on one PGlite instance, for the main and the shadow database.
 * `pglite-prisma-adapter`'s own `executeScript` does not await `exec` (errors escape as unhandled
 * rejections and a failing migration looks applied), so it is replaced here.
 */
const pgliteAdapterFactory = async (db: PGlite): Promise<SqlMigrationAwareDriverAdapterFactory> => {
  const [{ PrismaPGlite }, { DriverAdapterError }] = await Promise.all([
    import("pglite-prisma-adapter"),
    import("@prisma/driver-adapter-utils")
  ])
  const connect = async (): Promise<SqlDriverAdapter> => {
    const inner = await new PrismaPGlite(db).connect()
    return {
      provider: inner.provider,
      adapterName: inner.adapterName,
      queryRaw: (query) => inner.queryRaw(query),
      executeRaw: (query) => inner.executeRaw(query),
      startTransaction: (isolationLevel) => inner.startTransaction(isolationLevel),
      getConnectionInfo: () => inner.getConnectionInfo?.() ?? { supportsRelationJoins: true },
      dispose: () => inner.dispose(),
      executeScript: async (script) => {
        try {
          await db.exec(script)
        } catch (error) {
          const sqlError = sqlErrorFields(error)
          if (sqlError === undefined) throw error
          throw new DriverAdapterError({
            kind: "postgres",
            code: sqlError.code ?? "N/A",
            severity: sqlError.severity ?? "ERROR",
            message: sqlError.message,
            detail: sqlError.detail,
            column: sqlError.column,
            hint: sqlError.hint,
            originalMessage: sqlError.message,
            ...(sqlError.code === undefined ? {} : { originalCode: sqlError.code })
          })
        }
      }
    }
  }
  return { provider: "postgres", adapterName: "wingmate-pglite", connect, connectToShadowDb: connect }
}

/**
 * The SQL of the next migration: what brings a database built from `migrationsDir` to `schema`
 * (a `.prisma` file or a folder of them). `""` when they agree.
 *
 * Prisma's schema engine (Wasm) replays the migrations on a fresh in-memory PGlite (the shadow
 * database) and diffs the result against the datamodel; the text is what `prisma migrate dev`
 * would write to the new `migration.sql`. Rejects with `SchemaEngine` when the schema is invalid
 * or a migration does not apply cleanly.
 */
export const diffSchemaAgainstMigrations = async (options: {
  readonly schema?: string
  readonly migrationsDir?: string
}): Promise<string> => {
  const schema = options.schema ?? schemaPath
  const [schemaFiles, migrations, { PGlite }] = await Promise.all([
    readSchemaFiles(schema),
    migrationList(options.migrationsDir ?? migrationsDir),
    import("@electric-sql/pglite")
  ])
  const shadow = await PGlite.create()
  try {
    return await withEngine(await pgliteAdapterFactory(shadow), schemaFiles, async (engine, factory) => {
      const result = await runEngine(factory, "diff", () =>
        engine.diff({
          from: { tag: "migrations", ...migrations },
          to: { tag: "schemaDatamodel", files: [...schemaFiles] },
          script: true,
          exitCode: true,
          filters: NO_FILTER
        })
      )
      // With `exitCode: true` the engine answers 2 when the diff is not empty.
      return result.exitCode === 2 ? (result.stdout ?? "") : ""
    })
  } finally {
    await shadow.close()
  }
}

const isAdapterFactory = (
  value: SqlMigrationAwareDriverAdapterFactory | PGlite
): value is SqlMigrationAwareDriverAdapterFactory => "connectToShadowDb" in value

export interface PrismaEngineDiagnosis {
  readonly hasMigrationsTable: boolean
  readonly editedMigrationNames: ReadonlyArray<string>
  readonly failedMigrationNames: ReadonlyArray<string>
  /** `null` when the database history and the folder agree. */
  readonly history: SchemaEngineWasm.HistoryDiagnostic | null
}

/**
 * Prisma's own reading of a database's `_prisma_migrations` (the engine's
 * `diagnoseMigrationHistory`, as behind `prisma migrate status`), for cross-checking this module.
 * `adapter` is a migration-aware Prisma driver adapter factory (`new PrismaPg(...)`), or a PGlite.
 */
export const diagnoseWithPrismaEngine = async (
  adapter: SqlMigrationAwareDriverAdapterFactory | PGlite,
  dir: string = migrationsDir
): Promise<PrismaEngineDiagnosis> => {
  const factory = isAdapterFactory(adapter) ? adapter : await pgliteAdapterFactory(adapter)
  const migrations = await migrationList(dir)
  return withEngine(factory, undefined, (engine, bound) =>
    runEngine(bound, "diagnoseMigrationHistory", () =>
      engine.diagnoseMigrationHistory({ migrationsList: migrations, optInToShadowDatabase: false, filters: NO_FILTER })
    )
  )
}

/** Prisma's own `migrate deploy` (the engine's `applyMigrations`), for cross-checking this module. */
export const applyWithPrismaEngine = async (
  adapter: SqlMigrationAwareDriverAdapterFactory | PGlite,
  dir: string = migrationsDir
): Promise<ApplyResult> => {
  const factory = isAdapterFactory(adapter) ? adapter : await pgliteAdapterFactory(adapter)
  const migrations = await migrationList(dir)
  const output: SchemaEngineWasm.ApplyMigrationsOutput = await withEngine(factory, undefined, (engine, bound) =>
    runEngine(bound, "applyMigrations", () =>
      engine.applyMigrations({ migrationsList: migrations, filters: NO_FILTER })
    )
  )
  return { applied: output.appliedMigrationNames }
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error))

const hasCode = (error: unknown, code: string): boolean =>
  typeof error === "object" && error !== null && "code" in error && error.code === code

const optionalString = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined)

interface SqlErrorFields {
  readonly message: string
  readonly code: string | undefined
  readonly severity: string | undefined
  readonly detail: string | undefined
  readonly hint: string | undefined
  readonly column: string | undefined
}

/** The fields `pg` and PGlite both put on a server error (SQLSTATE `code`, `severity`…). */
const sqlErrorFields = (error: unknown): SqlErrorFields | undefined => {
  if (!(error instanceof Error) || !("severity" in error) || typeof error.severity !== "string") return undefined
  return {
    message: error.message,
    code: "code" in error ? optionalString(error.code) : undefined,
    severity: error.severity,
    detail: "detail" in error ? optionalString(error.detail) : undefined,
    hint: "hint" in error ? optionalString(error.hint) : undefined,
    column: "column" in error ? optionalString(error.column) : undefined
  }
}

const exists = (file: string): Promise<boolean> =>
  stat(file).then(
    () => true,
    () => false
  )

type Decoder<A> = (value: unknown) => A | undefined

const asString: Decoder<string> = (value) => (typeof value === "string" ? value : undefined)
const asDate: Decoder<Date> = (value) =>
  value instanceof Date
    ? value
    : typeof value === "string" && !Number.isNaN(Date.parse(value))
      ? new Date(value)
      : undefined
const asInteger: Decoder<number> = (value) =>
  typeof value === "number" && Number.isInteger(value)
    ? value
    : typeof value === "string" && /^-?\d+$/.test(value)
      ? Number(value)
      : undefined
const nullable =
  <A>(decode: Decoder<A>): Decoder<A | null> =>
  (value) =>
    value === null ? null : decode(value)

const field = <A>(row: SqlRow, name: string, decode: Decoder<A>): A => {
  const value = decode(row[name])
  if (value === undefined) {
    throw new Error(`_prisma_migrations.${name}: unexpected value ${JSON.stringify(row[name])}`)
  }
  return value
}
