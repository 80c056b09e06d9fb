/**
 * Database tooling that works without Prisma's downloadable schema engine:
 *
 *   node scripts/db.ts generate                 prisma generate (offline)
 *   node scripts/db.ts create <name>            write prisma/migrations/<timestamp>_<name>/migration.sql
 *   node scripts/db.ts create --name <name>       (nothing when schema.prisma and the migrations agree)
 *   node scripts/db.ts deploy                   apply pending migrations to DATABASE_URL (= prisma migrate deploy)
 *   node scripts/db.ts status                   applied / pending / problems on DATABASE_URL (exit 1 if any pending or problem)
 *   node scripts/db.ts migrate [name]           dev loop: create (if the schema changed), deploy, generate
 *   node scripts/db.ts resolve --rolled-back <migration>   mark a failed migration rolled back (= prisma migrate resolve)
 *
 * The folder stays in Prisma's format, so `prisma migrate deploy` works unchanged where it can run.
 */
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import path from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"
import {
  applyMigrations,
  diffSchemaAgainstMigrations,
  markMigrationRolledBack,
  migrationStatus,
  migrationsDir,
  pgExecutor,
  readMigrations,
  schemaPath,
  writeMigration,
  type SqlExecutor
} from "../src/core/db/migrations.ts"
import { patchCompilerLoader } from "./prisma-compiler.ts"

const root = fileURLToPath(new URL("..", import.meta.url))

class UsageError extends Error {}

const USAGE =
  "usage: node scripts/db.ts <generate | create <name> | deploy | status | migrate [name] | resolve --rolled-back <migration>>"

/** `--flag value`, `--flag=value`, or the first positional argument. */
const option = (args: ReadonlyArray<string>, flag: string): string | undefined => {
  for (const [index, arg] of args.entries()) {
    if (arg === flag) return args[index + 1]
    if (arg.startsWith(`${flag}=`)) return arg.slice(flag.length + 1)
  }
  return undefined
}

const nameArgument = (args: ReadonlyArray<string>): string | undefined =>
  option(args, "--name") ?? args.find((arg, index) => !arg.startsWith("-") && !args[index - 1]?.startsWith("--"))

const relative = (file: string): string => path.relative(process.cwd(), file) || "."

/** Hides the password of a connection string. */
const describeUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password !== "") parsed.password = "***"
    return parsed.toString()
  } catch {
    return "(DATABASE_URL)"
  }
}

const withDatabase = async <A>(use: (db: SqlExecutor, url: string) => Promise<A>): Promise<A> => {
  const url = process.env["DATABASE_URL"]
  if (url === undefined || url.trim() === "") {
    throw new UsageError("DATABASE_URL is not set (put it in .env or the environment)")
  }
  const client = new pg.Client({ connectionString: url })
  // An idle connection dropped by the server must not crash the process with an unhandled 'error'.
  client.on("error", () => undefined)
  try {
    await client.connect()
  } catch (error) {
    throw new Error(`cannot connect to ${describeUrl(url)}: ${message(error)}`, { cause: error })
  }
  try {
    return await use(pgExecutor(client), url)
  } finally {
    await client.end().catch(() => undefined)
  }
}

const generate = (): void => {
  const require = createRequire(import.meta.url)
  const prismaCli = path.join(path.dirname(require.resolve("prisma/package.json")), "build", "index.js")
  const result = spawnSync(process.execPath, [prismaCli, "generate"], {
    cwd: root,
    stdio: "inherit",
    env: {
      ...process.env,
      // `generate` never runs the schema engine, but Prisma 7 tries to download it unless this
      // points at an existing file.
      PRISMA_SCHEMA_ENGINE_BINARY: process.env["PRISMA_SCHEMA_ENGINE_BINARY"] ?? process.execPath,
      CHECKPOINT_DISABLE: process.env["CHECKPOINT_DISABLE"] ?? "1"
    }
  })
  if (result.error !== undefined) throw new Error(`prisma generate did not start: ${result.error.message}`)
  if (result.status !== 0)
    throw new Error(`prisma generate failed (exit code ${result.status ?? result.signal ?? "?"})`)
  // The query compiler read once, not kept in the heap as an imported module (issue #17).
  patchCompilerLoader(path.join(root, "src/core/db/generated/internal/class.ts"))
}

/** Writes the next migration if the schema moved; returns its folder name, or undefined. */
const create = async (name: string): Promise<string | undefined> => {
  const sql = await diffSchemaAgainstMigrations({ schema: schemaPath, migrationsDir })
  if (sql === "") {
    console.log("schema and migrations agree, nothing to create")
    return undefined
  }
  const folder = await writeMigration(migrationsDir, name, sql)
  console.log(`created ${relative(path.join(migrationsDir, folder, "migration.sql"))}:\n\n${sql.trimEnd()}\n`)
  return folder
}

const deploy = (): Promise<void> =>
  withDatabase(async (db, url) => {
    const total = (await readMigrations(migrationsDir)).length
    console.log(
      `${total} migration${total === 1 ? "" : "s"} in ${relative(migrationsDir)}, database ${describeUrl(url)}`
    )
    const { applied } = await applyMigrations(db, migrationsDir)
    if (applied.length === 0) console.log("no pending migrations to apply")
    else console.log(`applied ${applied.length}:\n${applied.map((name) => `  ${name}`).join("\n")}`)
  })

const status = (): Promise<boolean> =>
  withDatabase(async (db, url) => {
    const s = await migrationStatus(db, migrationsDir)
    const list = (names: ReadonlyArray<string>) => names.map((name) => `  ${name}`).join("\n")
    console.log(`database ${describeUrl(url)}, migrations ${relative(migrationsDir)}`)
    if (!s.hasMigrationsTable) console.log("no _prisma_migrations table yet")
    console.log(`applied (${s.applied.length})${s.applied.length > 0 ? `:\n${list(s.applied)}` : ""}`)
    console.log(`pending (${s.pending.length})${s.pending.length > 0 ? `:\n${list(s.pending)}` : ""}`)
    for (const m of s.mismatched) {
      console.log(
        `problem: ${m.name} was edited after it was applied (file ${m.fileChecksum}, database ${m.databaseChecksum})`
      )
    }
    for (const f of s.failed) {
      console.log(`problem: ${f.name} failed${f.logs === null ? "" : `: ${f.logs.split("\n").at(-1) ?? ""}`}`)
    }
    for (const name of s.missingFromDisk) console.log(`problem: ${name} is applied but missing from the folder`)
    const clean = s.pending.length === 0 && s.mismatched.length + s.failed.length + s.missingFromDisk.length === 0
    console.log(clean ? "database is up to date" : "database is NOT up to date")
    return clean
  })

const resolveRolledBack = (name: string): Promise<void> =>
  withDatabase(async (db) => {
    await markMigrationRolledBack(db, name)
    console.log(`marked ${name} as rolled back; the next deploy applies it again`)
  })

const run = async (argv: ReadonlyArray<string>): Promise<number> => {
  const [command, ...args] = argv
  switch (command) {
    case "generate":
      generate()
      return 0
    case "create": {
      const name = nameArgument(args)
      if (name === undefined) throw new UsageError("create needs a name: node scripts/db.ts create <name>")
      await create(name)
      return 0
    }
    case "deploy":
      await deploy()
      return 0
    case "status":
      return (await status()) ? 0 : 1
    case "migrate":
      await create(nameArgument(args) ?? "migration")
      await deploy()
      generate()
      return 0
    case "resolve": {
      const name = option(args, "--rolled-back")
      if (name === undefined) throw new UsageError("resolve needs --rolled-back <migration name>")
      await resolveRolledBack(name)
      return 0
    }
    default:
      throw new UsageError(command === undefined ? USAGE : `unknown command "${command}"; ${USAGE}`)
  }
}

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error))

if (existsSync(path.join(root, ".env"))) process.loadEnvFile(path.join(root, ".env"))

try {
  process.exitCode = await run(process.argv.slice(2))
} catch (error) {
  // One readable line, no stack trace.
  console.error(`db: ${message(error).replace(/\s*\n\s*/g, " ")}`)
  process.exitCode = 1
}
