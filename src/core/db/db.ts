/**
 * The database: one Prisma client for the whole process. PostgreSQL through `@prisma/adapter-pg`
 * when `DATABASE_URL` is set; otherwise the same client on embedded PGlite under `DATA_DIR`,
 * migrated at boot, so a newcomer needs nothing installed.
 */
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { PGlite } from "@electric-sql/pglite"
import { PrismaPg } from "@prisma/adapter-pg"
import { Context, Effect, Exit, Layer, Option, Redacted, Runtime, Schema } from "effect"
import pg from "pg"
import { PrismaPGlite } from "pglite-prisma-adapter"
import { AppConfig } from "../config.ts"
import { Prisma, PrismaClient } from "./generated/client.ts"
import { applyMigrations, migrationsDir, pgExecutor, pgliteExecutor } from "./migrations.ts"

export class DbError extends Schema.TaggedError<DbError>()("DbError", {
  operation: Schema.String,
  cause: Schema.Defect
}) {}

/** A unique constraint refused the write (Prisma's P2002): the row exists already. */
export const isUniqueViolation = (error: DbError): boolean =>
  error.cause instanceof Prisma.PrismaClientKnownRequestError && error.cause.code === "P2002"

/** The row an `update` or `delete` named does not exist (P2025). */
export const isRecordNotFound = (error: DbError): boolean =>
  error.cause instanceof Prisma.PrismaClientKnownRequestError && error.cause.code === "P2025"

// Prisma's codes for a server out of reach: not reachable, timed out, connection closed, and
// (P2024) no connection from the pool in time.
const UNAVAILABLE_PRISMA_CODES = new Set(["P1001", "P1002", "P1008", "P1017", "P2024"])
// The driver adapter's kinds for the same, and PostgreSQL's own SQLSTATEs: 57P01-57P03 (the
// server terminated the connection: pg_terminate_backend, shutdown, starting up) and class 08
// (connection exceptions).
const UNAVAILABLE_ADAPTER_KINDS = new Set([
  "DatabaseNotReachable",
  "ConnectionClosed",
  "SocketTimeout",
  "TooManyConnections"
])
const UNAVAILABLE_SQLSTATE = /^(57P0[1-3]|08[0-9A-Z]{3})$/
// node-postgres' own errors (no SQLSTATE) when a socket dies or the pool cannot connect.
const UNAVAILABLE_MESSAGE =
  /Connection terminated|timeout exceeded when trying to connect|ECONNREFUSED|ECONNRESET|Can't reach database server/

const fieldOf = (value: unknown, key: string): unknown =>
  typeof value === "object" && value !== null ? Reflect.get(value, key) : undefined

/**
 * A foreign key refused the write and it is `constraint` (its name in the database, as the driver
 * adapter reports it): the row it points to is gone. A Prisma call reports it as P2003, a raw
 * statement through the client (`$queryRaw`, PGlite's `sql`) as P2010 of kind
 * `ForeignKeyConstraintViolation`, one sent to the pool as SQLSTATE 23503.
 */
export const isForeignKeyViolation = (error: DbError, constraint: string): boolean => {
  const cause = error.cause
  // A statement sent to the pool (`sql` on PostgreSQL): node-postgres' error, PostgreSQL's fields.
  if (cause instanceof pg.DatabaseError) return cause.code === "23503" && cause.constraint === constraint
  if (!(cause instanceof Prisma.PrismaClientKnownRequestError)) return false
  if (cause.code !== "P2003" && cause.code !== "P2010") return false
  const adapter = fieldOf(fieldOf(cause.meta, "driverAdapterError"), "cause")
  if (cause.code === "P2010" && fieldOf(adapter, "kind") !== "ForeignKeyConstraintViolation") return false
  return fieldOf(fieldOf(adapter, "constraint"), "index") === constraint
}

/**
 * The database could not be reached or dropped the connection (terminated by an administrator,
 * restarted, out of connections): a transient condition, answered 503 rather than 500. A query
 * the server rejected (constraint, syntax, data) is not one.
 */
export const isConnectionLost = (error: DbError): boolean => {
  const cause = error.cause
  if (cause instanceof Prisma.PrismaClientKnownRequestError) {
    if (UNAVAILABLE_PRISMA_CODES.has(cause.code)) return true
    const adapter = fieldOf(fieldOf(cause.meta, "driverAdapterError"), "cause")
    const kind = fieldOf(adapter, "kind")
    const code = fieldOf(adapter, "code")
    return (
      (typeof kind === "string" && UNAVAILABLE_ADAPTER_KINDS.has(kind)) ||
      (kind === "postgres" && typeof code === "string" && UNAVAILABLE_SQLSTATE.test(code))
    )
  }
  if (cause instanceof Prisma.PrismaClientInitializationError) return true
  const code = fieldOf(cause, "code")
  if (typeof code === "string" && UNAVAILABLE_SQLSTATE.test(code)) return true
  return cause instanceof Error && UNAVAILABLE_MESSAGE.test(cause.message)
}

/**
 * The transaction lost to another one (a deadlock, 40P01, or a serialization failure, 40001:
 * Prisma's P2034 or the driver adapter's own report of it): running it again may well succeed.
 */
export const isTransactionConflict = (error: DbError): boolean => {
  const cause = error.cause
  if (!(cause instanceof Prisma.PrismaClientKnownRequestError)) return false
  if (cause.code === "P2034") return true
  const adapter = fieldOf(fieldOf(cause.meta, "driverAdapterError"), "cause")
  const kind = fieldOf(adapter, "kind")
  const code = fieldOf(adapter, "code")
  return kind === "TransactionWriteConflict" || (kind === "postgres" && (code === "40P01" || code === "40001"))
}

export type DbEngine = "postgres" | "pglite"

/** The client inside a transaction: what `Db.transaction`'s body queries with. */
export type TxClient = Prisma.TransactionClient

/** Runs one Prisma call on `client` (the process's, or a transaction's); a rejection becomes a `DbError`. */
export const queryWith = <C, A>(client: C, operation: string, run: (client: C) => Promise<A>) =>
  Effect.tryPromise({ try: () => run(client), catch: (cause) => new DbError({ operation, cause }) })

/** Why a transaction's promise rejects when its body failed: Prisma rolls back on a rejection. */
const ROLLBACK = Symbol("rollback")

export interface DbShape {
  readonly client: PrismaClient
  readonly engine: DbEngine
  /** Runs one Prisma call; a rejection becomes a `DbError` naming the operation. */
  readonly query: <A>(operation: string, run: (client: PrismaClient) => Promise<A>) => Effect.Effect<A, DbError>
  /**
   * Runs one raw statement (`Prisma.sql`), its rows as `$queryRaw` answers them: on PostgreSQL
   * straight on the pool under Prisma's client, which costs about half the CPU of going through
   * the client (~0.35 ms less per statement, `npm run bench:statements`); on PGlite through the
   * client. For the hot statements of a session (timestamps are read and written as UTC).
   */
  readonly sql: <Row>(operation: string, statement: Prisma.Sql) => Effect.Effect<Array<Row>, DbError>
  readonly ping: Effect.Effect<void, DbError>
  /**
   * Runs `body` in one transaction: committed when it succeeds; rolled back when it fails, with
   * its own failure (typed or not) coming out unchanged.
   */
  readonly transaction: <A, E, R>(
    operation: string,
    body: (tx: TxClient) => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E | DbError, R>
}

/** How `sql` sends a statement: its rows (typed by the caller, as `$queryRaw`'s are). */
type RawRows = (statement: Prisma.Sql) => Promise<Array<never>>

// `timestamp` (without time zone, as Prisma declares DateTime) holds UTC: read it as such, not in
// the process's time zone as node-postgres would.
const TIMESTAMP_OID = 1114
const utcTimestamp = (value: string) => new Date(`${value.replace(" ", "T")}Z`)
const utcTypes: pg.CustomTypesConfig = {
  getTypeParser: (oid: number, format?: "text" | "binary") =>
    oid === TIMESTAMP_OID && format !== "binary" ? utcTimestamp : pg.types.getTypeParser(oid, format)
}

/** Rows of `statement` on `pool`; a Date is sent as UTC (PostgreSQL ignores the `Z` of a `timestamp`). */
const poolRows =
  (pool: pg.Pool): RawRows =>
  async (statement) => {
    const values = statement.values.map((value) => (value instanceof Date ? value.toISOString() : value))
    const result = await pool.query<never>({ text: statement.text, values, types: utcTypes })
    return result.rows
  }

const make = (client: PrismaClient, engine: DbEngine, rawRows: RawRows): DbShape => {
  const query = <A>(operation: string, run: (client: PrismaClient) => Promise<A>) => queryWith(client, operation, run)
  const sql = <Row>(operation: string, statement: Prisma.Sql): Effect.Effect<Array<Row>, DbError> =>
    Effect.tryPromise({ try: () => rawRows(statement), catch: (cause) => new DbError({ operation, cause }) })
  const transaction = <A, E, R>(operation: string, body: (tx: TxClient) => Effect.Effect<A, E, R>) =>
    Effect.gen(function* () {
      const runtime = yield* Effect.runtime<R>()
      // The body's exit, kept aside: Prisma only sees a rejection (rollback) or a value (commit).
      const outcome: { exit?: Exit.Exit<A, E> } = {}
      const committed = yield* Effect.either(
        queryWith(client, operation, (c) =>
          c.$transaction(async (tx) => {
            const exit = await Runtime.runPromiseExit(runtime)(body(tx))
            outcome.exit = exit
            return Exit.isSuccess(exit) ? exit.value : Promise.reject(ROLLBACK)
          })
        )
      )
      if (committed._tag === "Right") return committed.right
      const exit = outcome.exit
      if (exit !== undefined && Exit.isFailure(exit) && committed.left.cause === ROLLBACK)
        return yield* Effect.failCause(exit.cause)
      return yield* committed.left
    })
  return {
    client,
    engine,
    query,
    sql,
    transaction,
    // Through `sql`: on PostgreSQL the pool alone, so a process that has not queried yet has not
    // loaded Prisma's query compiler (WebAssembly, ~8 MiB resident) for its boot and readiness checks.
    ping: Effect.asVoid(sql("ping", Prisma.sql`SELECT 1`))
  }
}

const prismaResource = (build: () => PrismaClient) =>
  Effect.acquireRelease(Effect.sync(build), (client) => Effect.promise(() => client.$disconnect()))

export class Db extends Context.Tag("Db")<Db, DbShape>() {
  /** PostgreSQL (production, CI): a pooled connection per process. */
  static postgres(options: { readonly url: Redacted.Redacted; readonly poolMax: number; readonly migrate: boolean }) {
    return Layer.scoped(
      Db,
      Effect.gen(function* () {
        const connectionString = Redacted.value(options.url)
        if (options.migrate) {
          yield* Effect.acquireUseRelease(
            Effect.tryPromise({
              try: async () => {
                const client = new pg.Client({ connectionString })
                await client.connect()
                return client
              },
              catch: (cause) => new DbError({ operation: "connect", cause })
            }),
            (client) =>
              Effect.tryPromise({
                try: () => applyMigrations(pgExecutor(client), migrationsDir),
                catch: (cause) => new DbError({ operation: "migrate", cause })
              }),
            (client) => Effect.promise(() => client.end())
          )
        }
        // The pool is ours (closed after the client): `sql` uses it without the client.
        const pool = yield* Effect.acquireRelease(
          Effect.sync(() => {
            const pool = new pg.Pool({ connectionString, max: options.poolMax })
            // An idle client's error (the server closed it) is no caller's: the pool drops that client
            // and the next query reports its own. Unheard, node would end the process with it; Prisma's
            // adapter listens only while its client is connected.
            pool.on("error", () => {})
            return pool
          }),
          (pool) => Effect.promise(() => pool.end())
        )
        const client = yield* prismaResource(() => new PrismaClient({ adapter: new PrismaPg(pool) }))
        const db = make(client, "postgres", poolRows(pool))
        yield* db.ping
        return db
      })
    )
  }

  /** Embedded PGlite stored in `dir` (`memory://` for tests), migrated before use. */
  static pglite(dir: string) {
    return Layer.scoped(
      Db,
      Effect.gen(function* () {
        if (!dir.startsWith("memory://")) mkdirSync(dir, { recursive: true })
        const pglite = yield* Effect.acquireRelease(
          Effect.tryPromise({
            try: () => PGlite.create(dir),
            catch: (cause) => new DbError({ operation: "open", cause })
          }),
          (db) => Effect.promise(() => db.close())
        )
        yield* Effect.tryPromise({
          try: () => applyMigrations(pgliteExecutor(pglite), migrationsDir),
          catch: (cause) => new DbError({ operation: "migrate", cause })
        })
        const client = yield* prismaResource(() => new PrismaClient({ adapter: new PrismaPGlite(pglite) }))
        return make(client, "pglite", (statement) => client.$queryRaw<Array<never>>(statement))
      })
    )
  }

  /** The layer the processes use: PostgreSQL when configured, PGlite otherwise (said once in the log). */
  static readonly layer = Layer.unwrapEffect(
    Effect.gen(function* () {
      const config = yield* AppConfig
      if (Option.isSome(config.databaseUrl)) {
        return Db.postgres({
          url: config.databaseUrl.value,
          poolMax: config.databasePoolMax,
          migrate: config.migrateOnBoot
        })
      }
      const dir = join(config.dataDir, "pglite")
      yield* Effect.logWarning(`Db: DATABASE_URL is unset, using embedded PGlite in ${dir} (migrated at boot)`)
      return Db.pglite(dir)
    })
  )
}
