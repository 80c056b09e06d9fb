/**
 * Counts what this process sends to PostgreSQL and Redis: every SQL statement through node-postgres
 * (Prisma's driver adapter and raw pools alike; BEGIN and COMMIT included) and every Redis command
 * through ioredis (BullMQ, the progress bus, the rate limiter). For tests that bound how many
 * statements and commands an operation costs: install once, then take windows of the counts.
 */
import { Redis as IORedis } from "ioredis"
import pg from "pg"

export interface Counted {
  /** The statements in order, each as its first words (no parameter values). */
  readonly sql: Array<string>
  /** The Redis command names in order. */
  readonly redis: Array<string>
}

const counted: Counted = { sql: [], redis: [] }
let installed = false
/** The test's own connections (probes), left out of the counts. */
const ignored = new WeakSet<object>()

/** Leaves `client` (a test's probe connection) out of the counts. */
export const ignore = (client: object) => void ignored.add(client)

/** The statement's text, from `query(text, …)` or `query({ text, … })`. */
const textOf = (query: unknown): string => {
  const text = typeof query === "string" ? query : Reflect.get(Object(query), "text")
  return typeof text === "string" ? text.replace(/\s+/g, " ").trim().slice(0, 90) : "?"
}

const commandName = (command: unknown): string => {
  const name = Reflect.get(Object(command), "name")
  return typeof name === "string" ? name : "?"
}

/** Wraps `method` of `prototype` so that each call is recorded before it runs. */
const tap = (prototype: object, method: string, record: (first: unknown) => void) => {
  const original: unknown = Reflect.get(prototype, method)
  if (typeof original !== "function") throw new Error(`${method} is not a method`)
  Reflect.set(prototype, method, function (this: object, ...args: Array<unknown>): unknown {
    if (!ignored.has(this)) record(args[0])
    return Reflect.apply(original, this, args)
  })
}

/** Starts counting (once per process). */
export const installCounters = () => {
  if (installed) return
  installed = true
  tap(pg.Client.prototype, "query", (query) => counted.sql.push(textOf(query)))
  tap(IORedis.prototype, "sendCommand", (command) => counted.redis.push(commandName(command)))
}

/** Where the counts are now: `since(mark)` answers what was sent after it. */
export const mark = () => ({ sql: counted.sql.length, redis: counted.redis.length })

export type Mark = ReturnType<typeof mark>

/** What was sent between `from` and `to` (default: now). */
export const between = (from: Mark, to: Mark = mark()): Counted => ({
  sql: counted.sql.slice(from.sql, to.sql),
  redis: counted.redis.slice(from.redis, to.redis)
})
