/**
 * The in-memory rate limiter: the same sliding-window log as the Redis one (see redis.ts), per
 * (rule, key) in this process's memory, timed by the Effect `Clock` (so TestClock drives it).
 * Logs whose every entry has left its window are swept every `sweepInterval`, on the next call
 * (an idle process keeps at most what it had; nothing grows without calls).
 */
import { Clock, Duration, Effect } from "effect"
import type { RateRule } from "./config.ts"
import { normalizeCost, type RateDecision, type RateLimiterShape, windowMsOf } from "./model.ts"

interface Entry {
  readonly at: number
  readonly cost: number
}

interface Log {
  entries: Array<Entry>
  used: number
  windowMs: number
}

export interface MemoryRateLimiterOptions {
  /** How often logs past their window are dropped; default 60 s. */
  readonly sweepInterval?: Duration.DurationInput
}

export interface MemoryRateLimiter extends RateLimiterShape {
  /** (rule, key) pairs currently held: what the sweep keeps bounded. */
  readonly trackedKeys: Effect.Effect<number>
}

const expire = (log: Log, now: number) => {
  let dropped = 0
  while (dropped < log.entries.length && (log.entries[dropped]?.at ?? 0) <= now - log.windowMs) {
    log.used -= log.entries[dropped]?.cost ?? 0
    dropped++
  }
  if (dropped > 0) log.entries.splice(0, dropped)
}

/** Ms until `needed` units have left the window, oldest first. */
const msUntilFreed = (log: Log, needed: number, now: number): number => {
  let freed = 0
  for (const entry of log.entries) {
    freed += entry.cost
    if (freed >= needed) return Math.max(1, entry.at + log.windowMs - now)
  }
  return log.windowMs
}

export const makeMemoryRateLimiter = (options: MemoryRateLimiterOptions = {}): Effect.Effect<MemoryRateLimiter> =>
  Effect.sync(() => {
    const sweepMs = Duration.toMillis(Duration.decode(options.sweepInterval ?? Duration.minutes(1)))
    const logs = new Map<string, Log>()
    let lastSweep = Number.NEGATIVE_INFINITY

    const sweep = (now: number) => {
      if (now - lastSweep < sweepMs) return
      lastSweep = now
      for (const [id, log] of logs) {
        expire(log, now)
        if (log.entries.length === 0) logs.delete(id)
      }
    }

    const consume = (rule: RateRule, key: string, cost?: number): Effect.Effect<RateDecision> =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        sweep(now)
        const units = normalizeCost(cost)
        const windowMs = windowMsOf(rule)
        const id = `${rule.name}\u0000${key}`
        const log = logs.get(id) ?? { entries: [], used: 0, windowMs }
        log.windowMs = windowMs
        expire(log, now)
        const allowed = log.used + units <= rule.limit
        if (allowed && units > 0) {
          log.entries.push({ at: now, cost: units })
          log.used += units
        }
        if (log.entries.length > 0) logs.set(id, log)
        else logs.delete(id)
        const oldest = log.entries[0]
        return {
          allowed,
          limit: rule.limit,
          remaining: Math.max(0, rule.limit - log.used),
          resetMs: oldest === undefined ? 0 : Math.max(0, oldest.at + windowMs - now),
          retryAfterMs: allowed
            ? 0
            : units > rule.limit
              ? windowMs
              : msUntilFreed(log, log.used + units - rule.limit, now)
        }
      })

    const forget = (subject: string) =>
      Effect.sync(() => {
        const ids = [...logs.keys()].filter((id) => id.endsWith(`\u0000${subject}`) || id.endsWith(`:${subject}`))
        for (const id of ids) logs.delete(id)
        return ids.length
      })

    return { consume, forget, trackedKeys: Effect.sync(() => logs.size) }
  })
