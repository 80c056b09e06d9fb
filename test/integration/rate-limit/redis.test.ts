/**
 * The Redis rate limiter on this machine's Redis: the shared contract (keys under a prefix of
 * this run), then what only Redis has: keys that expire, and a Redis that is down or silent
 * (calls allowed without waiting long, one warning).
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Logger } from "effect"
import { Redis as IORedis } from "ioredis"
import { randomUUID } from "node:crypto"
import { createServer, type Server, type Socket } from "node:net"
import { makeRedisRateLimiter } from "../../../src/core/rate-limit/rate-limiter.ts"
import { rateLimiterContract, rule } from "../../fixtures/rate-limiter-contract.ts"
import { captureLogs } from "../../fixtures/queue-contract.ts"

const url = process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379"
const runPrefix = `wingmate-test:ratelimit:${process.pid}-${randomUUID().slice(0, 6)}:`

const admin = new IORedis(url, { maxRetriesPerRequest: 2 })
afterAll(async () => {
  const keys = await admin.keys(`${runPrefix}*`)
  if (keys.length > 0) await admin.del(...keys)
  await admin.quit()
})

const client = (target: string, options: { readonly maxRetriesPerRequest?: number } = {}) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const redis = new IORedis(target, { maxRetriesPerRequest: options.maxRetriesPerRequest ?? 2 })
      redis.on("error", () => undefined)
      return redis
    }),
    (redis) => Effect.sync(() => redis.disconnect())
  )

/** A fresh prefix per limiter, so tests never see each other's keys. */
const freshPrefix = () => `${runPrefix}${randomUUID().slice(0, 8)}:`

rateLimiterContract({
  backend: "redis",
  make: Effect.flatMap(client(url), (redis) => makeRedisRateLimiter(redis, { keyPrefix: freshPrefix() }))
})

/** A TCP server that accepts connections and never answers: a Redis that hangs. */
const silentServer = Effect.acquireRelease(
  Effect.async<{ readonly server: Server; readonly sockets: Set<Socket>; readonly port: number }>((resume) => {
    const sockets = new Set<Socket>()
    const server = createServer((socket) => {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      resume(Effect.succeed({ server, sockets, port: typeof address === "object" && address ? address.port : 0 }))
    })
  }),
  ({ server, sockets }) =>
    Effect.async<void>((resume) => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resume(Effect.void))
    })
)

/** A port nothing listens on (bound, then released). */
const closedPort = Effect.map(silentServer, ({ port }) => port)

describe("RateLimiter.redis", () => {
  it.scoped("a key lives one window after its last counted call", () =>
    Effect.gen(function* () {
      const keyPrefix = freshPrefix()
      const limiter = yield* makeRedisRateLimiter(yield* client(url), { keyPrefix })
      yield* limiter.consume(rule(2, 30, "ttl"), "user:a")
      const ttl = yield* Effect.promise(() => admin.pttl(`${keyPrefix}ttl:user:a`))
      expect(ttl).toBeGreaterThan(25_000)
      expect(ttl).toBeLessThanOrEqual(30_000)
      expect(yield* Effect.promise(() => admin.zcard(`${keyPrefix}ttl:user:a`))).toBe(1)
    })
  )

  it.live("Redis down (nothing listening): calls are allowed, with one warning", () =>
    Effect.gen(function* () {
      const logs = captureLogs()
      const port = yield* Effect.scoped(closedPort)
      const limiter = yield* makeRedisRateLimiter(yield* client(`redis://127.0.0.1:${port}`), {
        keyPrefix: freshPrefix(),
        cooldown: Duration.millis(50)
      })
      for (let i = 0; i < 10; i++) {
        const decision = yield* limiter.consume(rule(1, 60), "user:a").pipe(Effect.provide(logs.layer))
        expect(decision).toEqual({ allowed: true, limit: 1, remaining: 0, resetMs: 0, retryAfterMs: 0 })
        yield* Effect.sleep(Duration.millis(10))
      }
      const warnings = logs.lines.filter((line) => line.includes("RateLimiter: Redis unavailable"))
      expect(warnings).toHaveLength(1)
    }).pipe(Effect.scoped)
  )

  it.live("Redis silent (accepts, never answers): each call is allowed after the timeout, never hangs", () =>
    Effect.gen(function* () {
      const { port } = yield* silentServer
      const limiter = yield* makeRedisRateLimiter(yield* client(`redis://127.0.0.1:${port}`), {
        keyPrefix: freshPrefix(),
        timeout: Duration.millis(100),
        cooldown: Duration.zero
      })
      const decisions = yield* Effect.all(
        Array.from({ length: 5 }, () => limiter.consume(rule(1, 60), "user:a")),
        { concurrency: "unbounded" }
      ).pipe(Effect.timeout(Duration.seconds(5)), Effect.provide(Logger.remove(Logger.defaultLogger)))
      expect(decisions.every((decision) => decision.allowed)).toBe(true)
    }).pipe(Effect.scoped)
  )
})
