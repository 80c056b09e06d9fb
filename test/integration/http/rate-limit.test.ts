/**
 * REST rate limits through the real server: per user (bearer token) and per client IP, the 429
 * envelope and its headers, headers on allowed answers, what is never limited, X-Forwarded-For
 * only with TRUST_PROXY, and the same on Redis (keys under a prefix of this run), Redis down included.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { Redis as IORedis } from "ioredis"
import { randomUUID } from "node:crypto"
import { RateLimiter } from "../../../src/core/rate-limit/rate-limiter.ts"
import { Redis } from "../../../src/core/redis.ts"
import { bearer, newClerkId, tokenFor } from "../../support/auth.ts"
import { TestDb } from "../../support/database.ts"
import { failure, http, type HttpResult, rawHttp } from "../../support/http.ts"
import { baseUrl, testServer } from "../../support/server.ts"

const redisUrl = process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379"
const runPrefix = `wingmate-test:ratelimit-http:${process.pid}-${randomUUID().slice(0, 6)}:`

afterAll(async () => {
  const admin = new IORedis(redisUrl, { maxRetriesPerRequest: 2 })
  const keys = await admin.keys(`${runPrefix}*`)
  if (keys.length > 0) await admin.del(...keys)
  await admin.quit()
})

const limited = (config: Record<string, string>) => ({ RATE_LIMIT_ENABLED: "true", ...config })

const get = (path: string, headers: Record<string, string> = {}) =>
  Effect.flatMap(baseUrl, (url) => http(`${url}${path}`, { headers }))

const rateHeaders = (res: HttpResult) => ({
  limit: res.headers.get("ratelimit-limit"),
  remaining: res.headers.get("ratelimit-remaining"),
  reset: res.headers.get("ratelimit-reset")
})

const RATE_LIMITED = failure("RATE_LIMITED", "Too many requests: retry after the Retry-After delay")

/** Sends `count` requests to /users/me as `clerkId`; their statuses and remaining counts. */
const asUser = (clerkId: string, count: number, extra: Record<string, string> = {}) =>
  Effect.forEach(Array.from({ length: count }), () =>
    get("/api/v1/users/me", { ...bearer(tokenFor({ clerkId })), ...extra })
  )

const expectRateLimited = (res: HttpResult, limit: number, maxRetrySeconds: number) => {
  expect(res.status).toBe(429)
  expect(res.body).toEqual(RATE_LIMITED)
  const retryAfter = Number(res.headers.get("retry-after"))
  expect(retryAfter).toBeGreaterThanOrEqual(1)
  expect(retryAfter).toBeLessThanOrEqual(maxRetrySeconds)
  expect(rateHeaders(res).limit).toBe(String(limit))
  expect(rateHeaders(res).remaining).toBe("0")
  expect(Number(rateHeaders(res).reset)).toBeGreaterThanOrEqual(1)
  // The plumbing still wraps it: request id and security headers.
  expect(res.headers.get("x-request-id")).not.toBeNull()
  expect(res.headers.get("x-content-type-options")).toBe("nosniff")
}

/** The per-user scenario, run on memory and on Redis. */
const perUser = Effect.gen(function* () {
  const alice = newClerkId("alice")
  const answers = yield* asUser(alice, 3)
  expect(answers.map((res) => res.status)).toEqual([200, 200, 200])
  // The user rule (3) is tighter than the IP rule (100): its headers are the ones sent.
  // Later answers count down to the first call's window end: 60 s or less, however long the
  // machine took between the calls (not "59 or 60": a loaded machine can take seconds).
  const inWindow = expect.stringMatching(/^([1-9]|[1-5]\d|60)$/)
  expect(answers.map(rateHeaders)).toEqual([
    { limit: "3", remaining: "2", reset: "60" },
    { limit: "3", remaining: "1", reset: inWindow },
    { limit: "3", remaining: "0", reset: inWindow }
  ])
  const [refused] = yield* asUser(alice, 1)
  expectRateLimited(refused!, 3, 60)
  // Another user on the same address is unaffected.
  const [bob] = yield* asUser(newClerkId("bob"), 1)
  expect(bob!.status).toBe(200)
  expect(rateHeaders(bob!)).toEqual({ limit: "3", remaining: "2", reset: "60" })
})

const userConfig = limited({ RATE_LIMIT_REST_USER: "3/60s", RATE_LIMIT_REST_IP: "100/60s" })

describe("REST rate limits (memory)", () => {
  it.live("per user: the 4th request in a minute → 429 RATE_LIMITED with Retry-After; another user is unaffected", () =>
    perUser.pipe(Effect.provide(testServer({ db: TestDb(), config: userConfig })))
  )

  it.live(
    "per IP (X-Forwarded-For with TRUST_PROXY=1): unauthenticated requests count too, their 401s carry the headers",
    () =>
      Effect.gen(function* () {
        const from = (forwarded: string) => get("/api/v1/users/me", { "x-forwarded-for": forwarded })
        const first = yield* from("203.0.113.7")
        expect(first.status).toBe(401)
        expect(rateHeaders(first)).toEqual({ limit: "2", remaining: "1", reset: "60" })
        expect((yield* from("203.0.113.7")).status).toBe(401)
        expectRateLimited(yield* from("203.0.113.7"), 2, 60)
        // Only the entry the trusted proxy appended counts: the client's own claims to its left do not.
        expectRateLimited(yield* from("198.51.100.1, 203.0.113.7"), 2, 60)
        // Another address is counted apart, and a limited address is refused even with a valid token.
        expect((yield* from("203.0.113.8")).status).toBe(401)
        const [withToken] = yield* asUser(newClerkId(), 1, { "x-forwarded-for": "203.0.113.7" })
        expectRateLimited(withToken!, 2, 60)
      }).pipe(
        Effect.provide(testServer({ db: TestDb(), config: limited({ RATE_LIMIT_REST_IP: "2/60s", TRUST_PROXY: "1" }) }))
      )
  )

  it.live("without TRUST_PROXY, X-Forwarded-For is ignored: the socket's address is the client", () =>
    Effect.gen(function* () {
      expect((yield* get("/api/v1/users/me", { "x-forwarded-for": "203.0.113.1" })).status).toBe(401)
      expect((yield* get("/api/v1/users/me", { "x-forwarded-for": "203.0.113.2" })).status).toBe(401)
      expectRateLimited(yield* get("/api/v1/users/me", { "x-forwarded-for": "203.0.113.3" }), 2, 60)
    }).pipe(Effect.provide(testServer({ db: TestDb(), config: limited({ RATE_LIMIT_REST_IP: "2/60s" }) })))
  )

  it.live("RPC over HTTP counts like REST: per user, 429 with the same envelope and headers", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const token = tokenFor({ clerkId: newClerkId("rpc") })
      const call = (id: number) =>
        http(`${url}/rpc`, {
          method: "POST",
          headers: { ...bearer(token), "content-type": "application/ndjson" },
          body: `${JSON.stringify({ _tag: "Request", id: String(id), tag: "users.me", payload: {}, headers: [] })}\n`
        })
      const answers = yield* Effect.forEach([1, 2], call)
      expect(answers.map((res) => res.status)).toEqual([200, 200])
      expect(answers.map((res) => rateHeaders(res).remaining)).toEqual(["1", "0"])
      expectRateLimited(yield* call(3), 2, 60)
    }).pipe(
      Effect.provide(
        testServer({ db: TestDb(), config: limited({ RATE_LIMIT_REST_USER: "2/60s", RATE_LIMIT_REST_IP: "100/60s" }) })
      )
    )
  )

  it.live(
    "every spelling the router resolves counts as its operation; writes and RPC too; unresolved ones are 404 and free",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const headers = { ...bearer(tokenFor({ clerkId: newClerkId("spelling") })), "content-type": "application/json" }
        const send = (method: string, target: string) =>
          rawHttp(url, target, { method, headers, ...(method === "POST" ? { body: "{}" } : {}) })
        // Spellings the router does not resolve: 404 envelopes, no RateLimit headers, nothing counted.
        for (const target of [
          "/api/v1/users/./me",
          "/api/v1/users/me%2F",
          "/api/v1/nothing-here",
          "/api/v2/users/me"
        ]) {
          const res = yield* send("GET", target)
          expect(res.status).toBe(404)
          expect(res.body).toMatchObject({ success: false, error: { code: "ROUTE_NOT_FOUND" } })
          expect(res.headers.get("ratelimit-limit")).toBeNull()
        }
        // Three spellings of one operation take the user's three requests.
        const first = yield* Effect.forEach(
          ["/API/v1/users/me", "//api/v1/users/me", `${url}/api/v1/users/me`],
          (target) => send("GET", target)
        )
        expect(first.map((res) => [res.status, rateHeaders(res).remaining])).toEqual([
          [200, "2"],
          [200, "1"],
          [200, "0"]
        ])
        // Now every spelling of every operation is refused, reads, writes and RPC alike.
        const spellings: ReadonlyArray<readonly [string, string]> = [
          ["GET", "/api/v1/users/me"],
          ["GET", "/API/v1/users/me"],
          ["GET", "//api/v1/users/me"],
          ["GET", "/%61pi/v1/users/me"],
          ["GET", `${url}/api/v1/users/me`],
          ["GET", "/api/v1//users/me/"],
          ["GET", "/api/v1/users/me;x"],
          ["POST", "/API/v1/uploads"],
          ["POST", "//api/v1/matches"],
          ["POST", "/%61pi/v1/magic-openers/generate"],
          ["POST", "/RPC"],
          ["POST", "/rpc"]
        ]
        for (const [method, target] of spellings) {
          const res = yield* send(method, target)
          expect({ method, target, status: res.status }).toEqual({ method, target, status: 429 })
          expectRateLimited(res, 3, 60)
        }
      }).pipe(
        Effect.provide(
          testServer({
            db: TestDb(),
            config: limited({ RATE_LIMIT_REST_USER: "3/60s", RATE_LIMIT_REST_IP: "100/60s" })
          })
        )
      )
  )

  it.live(
    "health probes are never limited and carry no RateLimit headers; /docs and /openapi.json have their own rule",
    () =>
      Effect.gen(function* () {
        const answers = yield* Effect.forEach(
          ["/health/live", "/health/live", "/health/ready", "/openapi.json", "/docs"],
          (path) => get(path)
        )
        expect(answers.map((res) => res.status)).toEqual([200, 200, 200, 200, 200])
        expect(answers.slice(0, 3).map((res) => res.headers.get("ratelimit-limit"))).toEqual(Array(3).fill(null))
        expect(answers.slice(3).map((res) => res.headers.get("ratelimit-limit"))).toEqual(["30", "30"])
        // The OpenAPI document says so too: 429 on the API's routes, not on the probes.
        const paths = (answers[3]!.body as { paths: Record<string, { get?: { responses: Record<string, unknown> } }> })
          .paths
        expect(paths["/api/v1/users/me"]?.get?.responses["429"]).toMatchObject({ description: "429 RATE_LIMITED" })
        expect(paths["/health/live"]?.get?.responses["429"]).toBeUndefined()
        // The one request the API allows is still there: the docs did not take it.
        expect((yield* get("/api/v1/users/me")).status).toBe(401)
        expectRateLimited(yield* get("/api/v1/users/me"), 1, 60)
      }).pipe(Effect.provide(testServer({ db: TestDb(), config: limited({ RATE_LIMIT_REST_IP: "1/60s" }) })))
  )

  it.live("RATE_LIMIT_ENABLED=false (the test default): no limits and no headers", () =>
    Effect.gen(function* () {
      const answers = yield* asUser(newClerkId(), 4)
      expect(answers.map((res) => [res.status, res.headers.get("ratelimit-limit")])).toEqual(Array(4).fill([200, null]))
    }).pipe(
      Effect.provide(
        testServer({ db: TestDb(), config: { RATE_LIMIT_ENABLED: "false", RATE_LIMIT_REST_USER: "1/60s" } })
      )
    )
  )
})

/** The limiter on the test's Redis client, under a prefix of this run. */
const redisLimiter = Layer.unwrapEffect(
  Effect.map(Redis, (redis) =>
    Option.match(redis.client, {
      onNone: () => RateLimiter.inMemory(),
      onSome: (client) => RateLimiter.redis(client, { keyPrefix: `${runPrefix}${randomUUID().slice(0, 8)}:` })
    })
  )
)

describe("REST rate limits (Redis)", () => {
  it.live("per user, counted in Redis", () =>
    perUser.pipe(
      Effect.provide(
        testServer({
          db: TestDb(),
          redis: Redis.layer,
          rateLimiter: redisLimiter,
          config: { ...userConfig, REDIS_URL: redisUrl }
        })
      )
    )
  )

  it.live("Redis unreachable: REST keeps answering, unmetered", () =>
    Effect.gen(function* () {
      const answers = yield* asUser(newClerkId(), 4)
      expect(answers.map((res) => res.status)).toEqual([200, 200, 200, 200])
    }).pipe(
      Effect.provide(
        testServer({
          db: TestDb(),
          redis: Redis.layer,
          config: limited({ REDIS_URL: "redis://127.0.0.1:1", RATE_LIMIT_REST_USER: "1/60s" })
        })
      )
    )
  )
})
