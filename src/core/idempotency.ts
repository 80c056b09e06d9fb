/**
 * The Idempotency-Key store (see src/core/http/idempotency.ts for the HTTP semantics): one entry
 * per (user, operation, key), either a lock held while the first request runs or the response it
 * finished with. In Redis when `REDIS_URL` is set (shared by every api instance, each change one
 * atomic Lua script), else in this process's memory.
 *
 * An entry is a string: `L<owner>` while in flight (the owner is a random token only the request
 * that set it knows, so a request whose lock expired can neither store nor release someone
 * else's), `D<json>` once done. Both carry the request's fingerprint. The lock lives `lockMs` and
 * is extended while the request runs, so a crashed instance locks a key for one `lockMs` at most.
 */
import { Clock, Context, Duration, Effect, Layer, Option, Schema } from "effect"
import type { Redis as IORedis } from "ioredis"
import { randomUUID } from "node:crypto"
import { Erasure } from "./erasure.ts"
import { Redis } from "./redis.ts"

export class IdempotencyStoreError extends Schema.TaggedError<IdempotencyStoreError>()("IdempotencyStoreError", {
  cause: Schema.Defect
}) {}

/** A finished response, as replayed. `body` is base64 (JSON bytes) or the SSE text. */
export const StoredResponse = Schema.Struct({
  fingerprint: Schema.String,
  status: Schema.Int,
  contentType: Schema.String,
  headers: Schema.Record({ key: Schema.String, value: Schema.String }),
  kind: Schema.Literal("bytes", "stream"),
  body: Schema.String
})
export type StoredResponse = typeof StoredResponse.Type

const InFlight = Schema.Struct({ owner: Schema.String, fingerprint: Schema.String })
const decodeStored = Schema.decodeUnknownOption(Schema.parseJson(StoredResponse))
const decodeInFlight = Schema.decodeUnknownOption(Schema.parseJson(InFlight))

export type Begun =
  /** The key was free: this request runs; `lock` identifies it for `complete`, `release`, `extend`. */
  | { readonly _tag: "Acquired"; readonly lock: string }
  | { readonly _tag: "InFlight"; readonly fingerprint: string; readonly remainingMs: number }
  | { readonly _tag: "Done"; readonly response: StoredResponse }

export interface IdempotencyStoreShape {
  readonly begin: (key: string, fingerprint: string, lockMs: number) => Effect.Effect<Begun, IdempotencyStoreError>
  /** Replaces the lock with the response for `ttlMs`; false when the lock is no longer this request's. */
  readonly complete: (
    key: string,
    lock: string,
    response: StoredResponse,
    ttlMs: number
  ) => Effect.Effect<boolean, IdempotencyStoreError>
  /** Drops the lock (a retry then runs the operation), if it is still this request's. */
  readonly release: (key: string, lock: string) => Effect.Effect<void, IdempotencyStoreError>
  readonly extend: (key: string, lock: string, lockMs: number) => Effect.Effect<void, IdempotencyStoreError>
  /** Every entry of one user (account erasure). */
  readonly forgetUser: (clerkId: string) => Effect.Effect<void, IdempotencyStoreError>
}

export const KEY_PREFIX = "wingmate:idempotency:"

const lockValue = (fingerprint: string) => `L${JSON.stringify({ owner: randomUUID(), fingerprint })}`
const doneValue = (response: StoredResponse) => `D${JSON.stringify(response)}`

const parse = (value: string, remainingMs: number): Begun => {
  if (value.startsWith("D")) {
    const stored = decodeStored(value.slice(1))
    if (Option.isSome(stored)) return { _tag: "Done", response: stored.value }
  }
  const inFlight = decodeInFlight(value.slice(1))
  return {
    _tag: "InFlight",
    fingerprint: Option.match(inFlight, { onNone: () => "", onSome: (lock) => lock.fingerprint }),
    remainingMs: Math.max(0, remainingMs)
  }
}

// KEYS[1]; ARGV: the lock value, its ttl (ms). Sets the lock if the key is free, else returns the entry and its PTTL.
const BEGIN_LUA = `
local v = redis.call('GET', KEYS[1])
if v then return { 0, v, redis.call('PTTL', KEYS[1]) } end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return { 1 }
`
// KEYS[1]; ARGV: the lock value, the response entry, its ttl (ms).
const COMPLETE_LUA = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`
// KEYS[1]; ARGV: the lock value.
const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`
// KEYS[1]; ARGV: the lock value, its new ttl (ms).
const EXTEND_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`

const BeginReply = Schema.Union(
  Schema.Tuple(Schema.Literal(1)),
  Schema.Tuple(Schema.Literal(0), Schema.String, Schema.Number)
)

/** Redis: `client` is borrowed (not closed). Each call waits `timeout` at most. */
export const makeRedisIdempotencyStore = (
  client: IORedis,
  options: { readonly keyPrefix?: string; readonly timeout?: Duration.DurationInput } = {}
): IdempotencyStoreShape => {
  const prefix = options.keyPrefix ?? KEY_PREFIX
  const timeout = Duration.decode(options.timeout ?? Duration.seconds(2))
  const run = (script: string, key: string, ...args: Array<string | number>) =>
    Effect.tryPromise({
      try: () => client.eval(script, 1, `${prefix}${key}`, ...args),
      catch: (cause) => new IdempotencyStoreError({ cause })
    }).pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => new IdempotencyStoreError({ cause: new Error(`no answer within ${Duration.format(timeout)}`) })
      })
    )

  return {
    begin: (key, fingerprint, lockMs) => {
      const lock = lockValue(fingerprint)
      return run(BEGIN_LUA, key, lock, lockMs).pipe(
        Effect.flatMap((reply) =>
          Schema.decodeUnknown(BeginReply)(reply).pipe(Effect.mapError((cause) => new IdempotencyStoreError({ cause })))
        ),
        Effect.map((reply): Begun => (reply[0] === 1 ? { _tag: "Acquired", lock } : parse(reply[1], reply[2])))
      )
    },
    complete: (key, lock, response, ttlMs) =>
      Effect.map(run(COMPLETE_LUA, key, lock, doneValue(response), ttlMs), (reply) => reply === 1),
    release: (key, lock) => Effect.asVoid(run(RELEASE_LUA, key, lock)),
    extend: (key, lock, lockMs) => Effect.asVoid(run(EXTEND_LUA, key, lock, lockMs)),
    // SCAN, not KEYS: it never blocks Redis; erasure is rare.
    forgetUser: (clerkId) =>
      Effect.tryPromise({
        try: async () => {
          const pattern = `${prefix}${clerkId.replace(/[*?[\]\\]/g, "\\$&")}:*`
          let cursor = "0"
          do {
            const [next, keys] = await client.scan(cursor, "MATCH", pattern, "COUNT", 1000)
            if (keys.length > 0) await client.unlink(...keys)
            cursor = next
          } while (cursor !== "0")
        },
        catch: (cause) => new IdempotencyStoreError({ cause })
      })
  }
}

/** This process's memory, timed by the Effect `Clock`; expired entries are dropped as they are met and swept on writes. */
export const makeMemoryIdempotencyStore = (): IdempotencyStoreShape => {
  const entries = new Map<string, { value: string; expiresAt: number }>()
  let lastSweep = 0
  const live = (key: string, now: number) => {
    const entry = entries.get(key)
    if (entry !== undefined && entry.expiresAt <= now) entries.delete(key)
    return entry !== undefined && entry.expiresAt > now ? entry : undefined
  }
  const sweep = (now: number) => {
    if (now - lastSweep < 60_000) return
    lastSweep = now
    for (const [key, entry] of entries) if (entry.expiresAt <= now) entries.delete(key)
  }
  return {
    begin: (key, fingerprint, lockMs) =>
      Effect.map(Clock.currentTimeMillis, (now): Begun => {
        sweep(now)
        const entry = live(key, now)
        if (entry !== undefined) return parse(entry.value, entry.expiresAt - now)
        const lock = lockValue(fingerprint)
        entries.set(key, { value: lock, expiresAt: now + lockMs })
        return { _tag: "Acquired", lock }
      }),
    complete: (key, lock, response, ttlMs) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        if (live(key, now)?.value !== lock) return false
        entries.set(key, { value: doneValue(response), expiresAt: now + ttlMs })
        return true
      }),
    release: (key, lock) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        if (live(key, now)?.value === lock) entries.delete(key)
      }),
    extend: (key, lock, lockMs) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const entry = live(key, now)
        if (entry?.value === lock) entry.expiresAt = now + lockMs
      }),
    forgetUser: (clerkId) =>
      Effect.sync(() => {
        for (const key of entries.keys()) if (key.startsWith(`${clerkId}:`)) entries.delete(key)
      })
  }
}

export class IdempotencyStore extends Context.Tag("IdempotencyStore")<IdempotencyStore, IdempotencyStoreShape>() {
  static inMemory: Layer.Layer<IdempotencyStore> = Layer.sync(IdempotencyStore, makeMemoryIdempotencyStore)

  /** Redis when `REDIS_URL` is set, else this process's memory (one instance only). */
  static readonly layer: Layer.Layer<IdempotencyStore, never, Redis> = Layer.unwrapEffect(
    Effect.map(Redis, (redis) =>
      Option.match(redis.client, {
        onNone: () => IdempotencyStore.inMemory,
        onSome: (client) => Layer.succeed(IdempotencyStore, makeRedisIdempotencyStore(client))
      })
    )
  )
}

/** Account erasure: the user's kept answers (they hold what the operations returned: openers, suggestions). */
export const IdempotencyErasureLive = Layer.effectDiscard(
  Effect.gen(function* () {
    const erasure = yield* Erasure
    const store = yield* IdempotencyStore
    yield* erasure.register({ name: "idempotency-keys", erase: (user) => store.forgetUser(user.clerkId) })
  })
)
