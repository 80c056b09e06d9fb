/**
 * The production progress store: Redis, shared by every api and worker process.
 *
 * Per topic (keys share a hash tag, so they live on one slot):
 * - `<prefix>{<topic>}:meta`, a hash: `seq` (the last seq), `state` (JSON), `terminal` ("0"/"1");
 * - `<prefix>{<topic>}:log`, a sorted set of the last `replayLimit` messages scored by seq;
 * - the pub/sub channel `<prefix>{<topic>}`.
 * Each publish is one Lua script (INCR, state, buffer, trim, expiry, PUBLISH: one round trip,
 * atomic), each catch-up read another; both keys expire `ttl` after the last event.
 *
 * Two connections per process: the caller's for commands, and a dedicated subscriber (a duplicate
 * of it) holding one SUBSCRIBE per topic that has local listeners (reference counted by the
 * router) plus a permanent control channel, so the connection never leaves subscriber mode while
 * topics come and go. When the subscriber reconnects (ioredis does, with its retry strategy), this
 * layer subscribes every channel that still has listeners and, once Redis confirms, tells every
 * listener to catch up from the replay buffer, which fills whatever was published meanwhile (or
 * gives a fresh snapshot when more than `replayLimit` events were missed).
 */
import { Duration, Effect, Runtime, type Scope } from "effect"
import type { Redis as IORedis } from "ioredis"
import { createHash } from "node:crypto"
import { CLEARED_MESSAGE, type ProgressBackend, type ReadResult } from "./backend.ts"
import { ProgressBusError, type ResolvedOptions } from "./model.ts"
import { makeRouter } from "./router.ts"

export interface RedisProgressOptions {
  /** Prefix of every key and channel (default `wingmate:progress:`). */
  readonly keyPrefix?: string
  /** The subscriber connection's `CLIENT SETNAME` (default `wingmate-progress-subscriber`). */
  readonly connectionName?: string
}

export const progressRedisKeys = (prefix: string, topic: string) => {
  const base = `${prefix}{${topic}}`
  return { meta: `${base}:meta`, log: `${base}:log`, channel: base }
}

// KEYS: meta, log. ARGV: channel, event JSON, has state, state JSON, terminal, ttl ms, replay limit,
// expected seq or "", floor seq or "".
const PUBLISH_SCRIPT = `
local current = tonumber(redis.call('HGET', KEYS[1], 'seq')) or 0
if ARGV[8] ~= '' and current ~= tonumber(ARGV[8]) then return -1 end
if ARGV[9] ~= '' and current < tonumber(ARGV[9]) then redis.call('HSET', KEYS[1], 'seq', ARGV[9]) end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local terminal = 'false'
if ARGV[5] == '1' then terminal = 'true' end
local message = '{"seq":' .. string.format('%d', seq) .. ',"terminal":' .. terminal .. ',"event":' .. ARGV[2] .. '}'
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'state', ARGV[4], 'terminal', ARGV[5])
else
  redis.call('HSET', KEYS[1], 'terminal', ARGV[5])
end
redis.call('ZADD', KEYS[2], seq, message)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[7]) + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('PUBLISH', ARGV[1], message)
return seq
`

// KEYS: meta, log. ARGV: after seq or "". The rule of readStored in backend.ts.
const READ_SCRIPT = `
local meta = redis.call('HMGET', KEYS[1], 'seq', 'state', 'terminal')
local seq = tonumber(meta[1]) or 0
local terminal = 0
if meta[3] == '1' then terminal = 1 end
local after = tonumber(ARGV[1])
if after ~= nil and after <= seq then
  if after == seq then return {seq, 'events', terminal} end
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if oldest[2] ~= nil and tonumber(oldest[2]) <= after + 1 then
    local out = {seq, 'events', terminal}
    for _, message in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')) do
      out[#out + 1] = message
    end
    return out
  end
end
return {seq, 'snapshot', terminal, meta[2]}
`

// KEYS: meta, log. ARGV: channel, cleared message.
const CLEAR_SCRIPT = `
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
`

/** How long a new subscription waits for Redis (e.g. while it reconnects) before it fails. */
const SUBSCRIBE_TIMEOUT = Duration.seconds(10)

/** EVALSHA, falling back to EVAL once when the server does not have the script cached. */
const script = (client: IORedis, source: string) => {
  const sha = createHash("sha1").update(source).digest("hex")
  return (keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>): Promise<unknown> =>
    client
      .evalsha(sha, keys.length, ...keys, ...args)
      .catch((error: unknown) =>
        error instanceof Error && error.message.startsWith("NOSCRIPT")
          ? client.eval(source, keys.length, ...keys, ...args)
          : Promise.reject(error)
      )
}

const parseRead = (reply: unknown): ReadResult | undefined => {
  if (!Array.isArray(reply)) return undefined
  const [seq, mode, terminal, ...rest] = reply as ReadonlyArray<unknown>
  if (typeof seq !== "number" || typeof terminal !== "number") return undefined
  if (mode === "events" && rest.every((message) => typeof message === "string")) {
    return { _tag: "Events", seq, terminal: terminal === 1, messages: rest.filter((m) => typeof m === "string") }
  }
  const state = rest[0]
  if (mode === "snapshot" && (state === null || state === undefined || typeof state === "string")) {
    return { _tag: "Snapshot", seq, terminal: terminal === 1, state: state ?? undefined }
  }
  return undefined
}

export const makeRedisBackend = (
  client: IORedis,
  options: ResolvedOptions & { readonly keyPrefix: string; readonly connectionName: string }
): Effect.Effect<ProgressBackend, never, Scope.Scope> =>
  Effect.gen(function* () {
    const runtime = yield* Effect.runtime<never>()
    const log = (effect: Effect.Effect<void>) => void Runtime.runFork(runtime)(effect)
    const keys = (topic: string) => progressRedisKeys(options.keyPrefix, topic)
    const control = `${options.keyPrefix}control`

    const subscriber = yield* Effect.acquireRelease(
      Effect.sync(() =>
        // Resubscribing is done here, not by ioredis: see the "ready" handler.
        client.duplicate({ connectionName: options.connectionName, lazyConnect: false, autoResubscribe: false })
      ),
      (subscriber) =>
        Effect.promise(() =>
          subscriber.quit().then(
            () => undefined,
            () => subscriber.disconnect()
          )
        )
    )

    // SUBSCRIBE goes out only on a ready connection. ioredis would write it during the handshake
    // (it may be sent while Redis loads), before the ready check's INFO, which then fails in
    // subscriber mode and drops the connection along with the subscription. Until the connection
    // is ready, a new channel waits for the subscription made by the "ready" handler.
    let waiting: Array<{ readonly resolve: () => void; readonly reject: (error: unknown) => void }> = []
    const router = makeRouter(options.listenerBuffer, {
      subscribe: (channel) =>
        subscriber.status === "ready"
          ? subscriber.subscribe(channel).then(() => undefined)
          : new Promise<void>((resolve, reject) => waiting.push({ resolve, reject })),
      unsubscribe: (channel) => {
        // When not ready, the next "ready" subscribes only the channels still listened to.
        if (subscriber.status === "ready") subscriber.unsubscribe(channel).catch(() => undefined)
      }
    })

    let down = false
    let connectedBefore = false
    subscriber.on("message", (channel: string, message: string) => router.dispatch(channel, message))
    subscriber.on("error", (error: Error) => {
      if (down) return
      down = true
      log(Effect.logWarning(`ProgressBus: Redis subscriber connection failed (${error.message}); reconnecting`))
    })
    subscriber.on("ready", () => {
      const waiters = waiting
      waiting = []
      // Before the first connection no subscription was live, so nothing can have been missed.
      const reconnected = connectedBefore
      connectedBefore = true
      if (down) log(Effect.logInfo("ProgressBus: Redis subscriber connection is back; listeners catch up"))
      down = false
      // The control channel keeps the connection in subscriber mode while topics come and go.
      subscriber.subscribe(control, ...router.channels()).then(
        () => {
          for (const waiter of waiters) waiter.resolve()
          if (reconnected) router.resyncAll()
        },
        (error: unknown) => {
          for (const waiter of waiters) waiter.reject(error)
          log(Effect.logWarning("ProgressBus: subscribing on the new connection failed", error))
        }
      )
    })
    yield* Effect.addFinalizer(() => Effect.sync(() => subscriber.removeAllListeners("ready")))

    const publishScript = script(client, PUBLISH_SCRIPT)
    const readScript = script(client, READ_SCRIPT)
    const clearScript = script(client, CLEAR_SCRIPT)
    const fail = (operation: string, topic: string) => (cause: unknown) =>
      new ProgressBusError({ operation, topic, cause })

    const backend: ProgressBackend = {
      publish: (request) => {
        const { meta, log: buffer, channel } = keys(request.topic)
        return Effect.tryPromise({
          try: () =>
            publishScript(
              [meta, buffer],
              [
                channel,
                request.event,
                request.state === undefined ? "0" : "1",
                request.state ?? "",
                request.terminal ? "1" : "0",
                options.ttlMs,
                options.replayLimit,
                request.expectSeq ?? "",
                request.floorSeq ?? ""
              ]
            ),
          catch: fail("publish", request.topic)
        }).pipe(
          Effect.flatMap((reply) =>
            typeof reply !== "number"
              ? Effect.fail(fail("publish", request.topic)(new Error(`Unexpected reply ${String(reply)}`)))
              : Effect.succeed(reply < 0 ? ("conflict" as const) : reply)
          )
        )
      },
      read: (topic, afterSeq) => {
        const { meta, log: buffer } = keys(topic)
        return Effect.tryPromise({
          try: () => readScript([meta, buffer], [afterSeq ?? ""]),
          catch: fail("read", topic)
        }).pipe(
          Effect.flatMap((reply) => {
            const result = parseRead(reply)
            return result === undefined
              ? Effect.fail(fail("read", topic)(new Error("Unexpected reply to the read script")))
              : Effect.succeed(result)
          })
        )
      },
      listen: (topic) =>
        router.listen(keys(topic).channel).pipe(
          Effect.timeoutFail({
            duration: SUBSCRIBE_TIMEOUT,
            onTimeout: () => new Error(`No subscription within ${Duration.format(SUBSCRIBE_TIMEOUT)}`)
          }),
          Effect.mapError(fail("subscribe", topic))
        ),
      clear: (topic) => {
        const { meta, log: buffer, channel } = keys(topic)
        return Effect.tryPromise({
          try: () => clearScript([meta, buffer], [channel, CLEARED_MESSAGE]),
          catch: fail("clear", topic)
        }).pipe(Effect.asVoid)
      }
    }
    return backend
  })
