/**
 * The Redis rate limiter: one Lua script per call, so the check and the count are atomic across
 * every api instance.
 *
 * Algorithm: a sliding-window log, one sorted set per (rule, key) whose members are the counted
 * units scored by their time. Chosen over the two-counter approximation because it is exact (no
 * window ever holds more than `limit`, and `Retry-After`/`RateLimit-Reset` are the real times a
 * unit comes back), and its cost stays small here: rejected calls are not stored, so a set holds
 * at most `limit` members (hundreds), and the key expires one window after its last counted call.
 *
 * Time is the caller's `Clock`, passed to the script: tests drive it with TestClock, and api
 * instances only need NTP-synced clocks (a skew shifts a window by that skew, nothing more).
 *
 * Degrades, never fails: when Redis errors or does not answer within `timeout` (ioredis queues
 * commands while disconnected), the call is allowed, a warning is logged at most once per
 * `warnInterval`, and Redis is skipped for `cooldown` so that an outage adds no latency.
 */
import { Clock, Duration, Effect, Option, Schema } from "effect"
import type { Redis as IORedis } from "ioredis"
import { createHash, randomUUID } from "node:crypto"
import type { RateRule } from "./config.ts"
import {
  degradedDecision,
  normalizeCost,
  type RateDecision,
  type RateLimiterShape,
  RateLimitStoreError,
  windowMsOf
} from "./model.ts"

export interface RedisRateLimiterOptions {
  /** Prepended to every key; default `wingmate:ratelimit:`. */
  readonly keyPrefix?: string
  /** How long a call waits for Redis before it is allowed anyway; default 150 ms. */
  readonly timeout?: Duration.DurationInput
  /** After a failure, calls skip Redis (allowed) this long; default 1 s. */
  readonly cooldown?: Duration.DurationInput
  /** At most one "Redis unavailable" warning per interval; default 30 s. */
  readonly warnInterval?: Duration.DurationInput
}

// KEYS[1] the log; ARGV: now (ms), window (ms), limit, cost, a unique member id.
// Returns { allowed (0/1), remaining, resetMs, retryAfterMs }.
export const SLIDING_WINDOW_LUA = `
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local id = ARGV[5]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local used = redis.call('ZCARD', key)
local allowed = 0
local retry = 0
if used + cost <= limit then
  allowed = 1
  if cost > 0 then
    for i = 1, cost do
      redis.call('ZADD', key, now, id .. ':' .. i)
    end
    redis.call('PEXPIRE', key, window)
    used = used + cost
  end
elseif cost > limit then
  retry = window
else
  local freeing = redis.call('ZRANGE', key, used + cost - limit - 1, used + cost - limit - 1, 'WITHSCORES')
  retry = math.max(1, tonumber(freeing[2]) + window - now)
end
local reset = 0
if used > 0 then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  reset = math.max(0, tonumber(oldest[2]) + window - now)
end
return { allowed, limit - used, reset, retry }
`

const SCRIPT_SHA = createHash("sha1").update(SLIDING_WINDOW_LUA).digest("hex")

const Reply = Schema.Tuple(Schema.Number, Schema.Number, Schema.Number, Schema.Number)

export const makeRedisRateLimiter = (client: IORedis, options: RedisRateLimiterOptions = {}) =>
  Effect.sync((): RateLimiterShape => {
    const keyPrefix = options.keyPrefix ?? "wingmate:ratelimit:"
    const timeout = Duration.decode(options.timeout ?? Duration.millis(150))
    const cooldownMs = Duration.toMillis(Duration.decode(options.cooldown ?? Duration.seconds(1)))
    const warnMs = Duration.toMillis(Duration.decode(options.warnInterval ?? Duration.seconds(30)))
    // Members must be unique across instances and calls within one millisecond.
    const instance = randomUUID().slice(0, 8)
    let sequence = 0
    let skipUntil = Number.NEGATIVE_INFINITY
    let lastWarning = Number.NEGATIVE_INFINITY

    const run = (args: ReadonlyArray<string | number>, key: string) =>
      Effect.tryPromise({
        // EVALSHA, and EVAL once when this Redis has not seen the script (fresh, restarted, flushed).
        try: () =>
          client
            .evalsha(SCRIPT_SHA, 1, key, ...args)
            .catch((error: unknown) =>
              error instanceof Error && error.message.startsWith("NOSCRIPT")
                ? client.eval(SLIDING_WINDOW_LUA, 1, key, ...args)
                : Promise.reject(error)
            ),
        catch: (cause) => new RateLimitStoreError({ cause })
      }).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => new RateLimitStoreError({ cause: new Error(`no answer within ${Duration.format(timeout)}`) })
        }),
        Effect.flatMap((reply) =>
          Schema.decodeUnknown(Reply)(reply).pipe(Effect.mapError((cause) => new RateLimitStoreError({ cause })))
        )
      )

    const degrade = (rule: RateRule, units: number, now: number, error: Option.Option<RateLimitStoreError>) =>
      Effect.gen(function* () {
        if (Option.isSome(error)) skipUntil = now + cooldownMs
        if (Option.isSome(error) && now - lastWarning >= warnMs) {
          lastWarning = now
          const cause = error.value.cause
          yield* Effect.logWarning(
            `RateLimiter: Redis unavailable, calls are allowed unmetered (${cause instanceof Error ? cause.message : "unknown error"})`
          )
        }
        return degradedDecision(rule, units)
      })

    const consume = (rule: RateRule, key: string, cost?: number): Effect.Effect<RateDecision> =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const units = normalizeCost(cost)
        if (now < skipUntil) return yield* degrade(rule, units, now, Option.none())
        const windowMs = windowMsOf(rule)
        sequence = (sequence + 1) % Number.MAX_SAFE_INTEGER
        return yield* run(
          [now, windowMs, rule.limit, units, `${now}:${instance}:${sequence}`],
          `${keyPrefix}${rule.name}:${key}`
        ).pipe(
          Effect.map(([allowed, remaining, resetMs, retryAfterMs]): RateDecision => ({
            allowed: allowed === 1,
            limit: rule.limit,
            remaining: Math.max(0, remaining),
            resetMs,
            retryAfterMs
          })),
          Effect.catchAll((error) => degrade(rule, units, now, Option.some(error)))
        )
      })

    // SCAN, not KEYS: it never blocks Redis; erasure is rare, so walking the key space is affordable.
    const forget = (subject: string) =>
      Effect.tryPromise({
        try: async () => {
          const pattern = `${keyPrefix}*:${subject.replace(/[*?[\]\\]/g, "\\$&")}`
          let cursor = "0"
          let dropped = 0
          do {
            const [next, keys] = await client.scan(cursor, "MATCH", pattern, "COUNT", 1000)
            if (keys.length > 0) dropped += await client.unlink(...keys)
            cursor = next
          } while (cursor !== "0")
          return dropped
        },
        catch: (cause) => new RateLimitStoreError({ cause })
      })

    return { consume, forget }
  })
