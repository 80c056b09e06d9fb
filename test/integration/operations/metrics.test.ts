/**
 * `GET /metrics` (the api; the worker's health port) and the queue dashboard at `/admin/queues`,
 * on the real PostgreSQL and Redis: the families after real traffic (requests, a session through
 * the BullMQ worker, its AI calls on the local provider, a WebSocket, a rate-limit refusal) with
 * their labels, and who may read them (ADMIN_TOKEN as a bearer or Basic password; a user's Clerk
 * token refused; off in production without ADMIN_TOKEN; open in development).
 */
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { randomBytes } from "node:crypto"
import { createServer } from "node:net"
import { afterAll, beforeAll } from "vitest"
import { AppConfig } from "../../../src/core/config.ts"
import { Metrics } from "../../../src/core/metrics.ts"
import { Redis } from "../../../src/core/redis.ts"
import { WorkerLivenessLive } from "../../../src/modules/health/worker-liveness.ts"
import { assertFontsRender, chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { testKeys } from "../../support/auth.ts"
import { notTheApiServer } from "../../support/conformance.setup.ts"
import { TestDb } from "../../support/database.ts"
import { http } from "../../support/http.ts"
import { baseUrl, testConfig, testServer } from "../../support/server.ts"
import { provisionUser } from "../../support/users.ts"
import { connectAs, ofType } from "../../support/ws.ts"
import { startFakeOpenAI } from "../../fakes/ai/index.ts"
import { generateJson } from "../openers/support.ts"
import { awaitFinished, createSession, uploadPng, type WireSession } from "../sessions/support.ts"

const ADMIN_TOKEN = `admin-${randomBytes(24).toString("hex")}`
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` }
const basic = (password: string) => ({
  authorization: `Basic ${Buffer.from(`ops:${password}`).toString("base64")}`
})

const redisConfig = {
  REDIS_URL: process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379",
  QUEUE_PREFIX: `wm-test-${randomBytes(4).toString("hex")}`
}

const openai = await startFakeOpenAI()
openai.setFallback({ kind: "status", status: 500 })
afterAll(() => openai.close())

let screenshot: Buffer

beforeAll(async () => {
  await assertFontsRender()
  screenshot = await chatScreenshotPng()
})

/** The value of the one sample `name{…}` whose labels include all of `labels`; undefined if none. */
const sample = (text: string, name: string, labels: Record<string, string> = {}): number | undefined => {
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line)
    if (match === null || match[1] !== name) continue
    const found = new Map([...(match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]))
    if (Object.entries(labels).every(([key, value]) => found.get(key) === value)) return Number(match[3])
  }
  return undefined
}

const scrape = (url: string) =>
  Effect.gen(function* () {
    const res = yield* http(`${url}/metrics`, { headers: admin })
    expect(res.status).toBe(200)
    return res.text
  })

const unauthorized = {
  success: false,
  error: { code: "UNAUTHORIZED", message: expect.any(String) as unknown }
}

layer(
  testServer({
    db: TestDb(),
    redis: Redis.layer,
    consumer: true,
    config: { ...redisConfig, ADMIN_TOKEN, RATE_LIMIT_ENABLED: "true", RATE_LIMIT_DOCS_IP: "1/60s" }
  }),
  { timeout: 120_000 }
)("metrics and the queue dashboard with ADMIN_TOKEN set", (it) => {
  it.effect(
    "/metrics: the admin token as a bearer or Basic password; none, a user's token or a wrong one is a 401",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const user = yield* provisionUser(url, "metrics-user")
        for (const headers of [{}, user.headers, { authorization: "Bearer nope" }, basic("nope")]) {
          const refused = yield* http(`${url}/metrics`, { headers })
          expect(refused.status).toBe(401)
          expect(refused.body).toEqual(unauthorized)
          expect(refused.headers.get("www-authenticate")).toMatch(/^Basic realm="wingmate-admin".*Bearer/)
        }
        for (const headers of [admin, basic(ADMIN_TOKEN)]) {
          const allowed = yield* http(`${url}/metrics`, { headers })
          expect(allowed.status).toBe(200)
          expect(allowed.headers.get("content-type")).toBe("text/plain")
          expect(allowed.text).toMatch(/^# HELP /m)
        }
      })
  )

  it.effect("after a session through the worker: HTTP, queue, phase, AI and circuit families with their labels", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "metrics-session")
      const uploadId = yield* uploadPng(url, user.headers, screenshot)
      const created = yield* createSession(url, user.headers, { uploadIds: [uploadId] })
      expect(created.status).toBe(202)
      const id = (created.body as { data: WireSession }).data.id
      const done = yield* awaitFinished(url, user.headers, id)
      expect(done.status).toBe("completed")
      yield* http(`${url}/metrics`, { headers: admin })

      const text = yield* scrape(url)
      // Requests by route pattern, never the raw URL; the operator routes are not timed.
      expect(
        sample(text, "http_server_request_duration_seconds_count", {
          method: "GET",
          route: "/api/v1/sessions/:sessionId",
          status: "200"
        })
      ).toBeGreaterThan(0)
      expect(text).not.toContain(id)
      expect(text).not.toMatch(/http_server_request_duration_seconds_count\{[^}]*route="\/metrics"/)
      // Queue depth (read now), wait and attempt durations by outcome.
      for (const state of ["waiting", "active", "delayed", "failed"]) {
        expect(sample(text, "wingmate_queue_jobs", { queue: "sessions", state })).toBe(0)
      }
      expect(sample(text, "wingmate_queue_job_wait_seconds_count", { queue: "sessions" })).toBeGreaterThan(0)
      expect(
        sample(text, "wingmate_queue_job_duration_seconds_count", { queue: "sessions", outcome: "completed" })
      ).toBeGreaterThan(0)
      for (const phase of ["normalise", "ocr", "transcript", "suggestions"]) {
        expect(sample(text, "wingmate_session_phase_duration_seconds_count", { phase, outcome: "ok" })).toBeGreaterThan(
          0
        )
      }
      // The AI calls of the session (the local provider: free, but counted with its tokens).
      expect(
        sample(text, "wingmate_ai_calls_total", {
          provider: "local",
          model: "local-deterministic",
          feature: "sessions.suggestions",
          outcome: "ok"
        })
      ).toBeGreaterThan(0)
      expect(sample(text, "wingmate_ai_tokens_total", { provider: "local", direction: "output" })).toBeGreaterThan(0)
      expect(sample(text, "wingmate_ai_cost_usd_total", { provider: "local" })).toBe(0)
      expect(sample(text, "wingmate_ai_circuit_state", { provider: "local", state: "closed" })).toBe(1)
      expect(sample(text, "wingmate_ai_circuit_state", { provider: "local", state: "open" })).toBe(0)
      expect(text).toMatch(/^# TYPE http_server_request_duration_seconds histogram$/m)
      expect(text).toMatch(/^# TYPE wingmate_ai_calls_total counter$/m)
      expect(text).toMatch(/^# TYPE wingmate_queue_jobs gauge$/m)
    })
  )

  it.effect("WebSocket connections and subscriptions are gauges; a rate-limit refusal counts by limit", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "metrics-ws")
      const before = yield* scrape(url)
      const connections = sample(before, "wingmate_ws_connections") ?? 0
      yield* Effect.scoped(
        Effect.gen(function* () {
          const socket = yield* connectAs(url, user.token)
          const during = yield* scrape(url)
          expect(sample(during, "wingmate_ws_connections")).toBe(connections + 1)
          // A subscription to a session that does not exist is refused: no subscription counted.
          yield* socket.send({ type: "subscribe", sessionId: "00000000-0000-4000-8000-000000000000" })
          yield* socket.next(ofType("error"))
          expect(sample(yield* scrape(url), "wingmate_ws_subscriptions") ?? 0).toBe(0)
        })
      )

      const refusals = sample(before, "wingmate_rate_limit_refusals_total", { limit: "docs-ip" }) ?? 0
      const statuses = [(yield* http(`${url}/openapi.json`)).status, (yield* http(`${url}/openapi.json`)).status]
      expect(statuses).toContain(429)
      const after = yield* scrape(url)
      expect(sample(after, "wingmate_rate_limit_refusals_total", { limit: "docs-ip" })).toBeGreaterThan(refusals)
      // /metrics itself is outside the limits: scraped again and again above, never a 429.
    })
  )

  it.effect("the process: RSS, V8 heap, CPU seconds as a counter, event loop lag by quantile", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const first = yield* scrape(url)
      const rss = sample(first, "process_resident_memory_bytes") ?? 0
      const used = sample(first, "nodejs_heap_size_used_bytes") ?? 0
      const total = sample(first, "nodejs_heap_size_total_bytes") ?? 0
      // The test server is this process: its own figures bound what the scrape says.
      expect(rss).toBeGreaterThan(32 * 1024 * 1024)
      expect(used).toBeGreaterThan(0)
      expect(used).toBeLessThanOrEqual(total)
      expect(total).toBeLessThan(rss)
      expect(sample(first, "nodejs_external_memory_bytes")).toBeGreaterThan(0)
      expect(first).toMatch(/^# TYPE process_cpu_seconds_total counter$/m)
      for (const quantile of ["p50", "p99", "max"]) {
        expect(sample(first, "nodejs_eventloop_lag_seconds", { quantile })).toBeGreaterThanOrEqual(0)
      }
      const cpuBefore = sample(first, "process_cpu_seconds_total") ?? 0
      expect(cpuBefore).toBeGreaterThan(0)
      // Some CPU spent between two scrapes: the counter moves forward.
      const spendUntil = process.cpuUsage().user + 50_000
      while (process.cpuUsage().user < spendUntil) JSON.stringify({ spend: Array.from({ length: 1000 }, (_, i) => i) })
      expect(sample(yield* scrape(url), "process_cpu_seconds_total")).toBeGreaterThan(cpuBefore)
    })
  )

  it.effect("/admin/queues: the page and its API behind the admin token; the API lists the sessions queue", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "dashboard-user")
      for (const headers of [{}, user.headers, basic("nope")]) {
        const refused = yield* http(`${url}/admin/queues`, { headers })
        expect(refused.status).toBe(401)
        expect(refused.body).toEqual(unauthorized)
        expect(refused.headers.get("www-authenticate")).toMatch(/^Basic realm="wingmate-admin"/)
        expect((yield* http(`${url}/admin/queues/api/queues`, { headers })).status).toBe(401)
      }

      const page = yield* http(`${url}/admin/queues`, { headers: basic(ADMIN_TOKEN) })
      expect(page.status).toBe(200)
      expect(page.headers.get("content-type")).toMatch(/^text\/html/)
      expect(page.headers.get("content-security-policy")).toContain("script-src 'self'")
      expect(page.headers.get("x-frame-options")).toBe("DENY")
      const script = /<script defer src="([^"]+)"/.exec(page.text)?.[1]
      expect(script).toBeDefined()
      const asset = yield* http(`${url}/admin/queues/${script ?? ""}`, { headers: basic(ADMIN_TOKEN) })
      expect(asset.status).toBe(200)
      expect(asset.headers.get("content-type")).toMatch(/javascript/)

      const api = yield* http(`${url}/admin/queues/api/queues`, { headers: admin })
      expect(api.status).toBe(200)
      const queues = (api.body as { queues: ReadonlyArray<{ name: string; readOnlyMode: boolean }> }).queues
      expect(queues.map((queue) => queue.name)).toEqual(["sessions"])
      expect(queues[0]?.readOnlyMode).toBe(true)

      // Read-only: pausing (as retrying or removing) is refused by the board itself.
      const pause = yield* http(`${url}/admin/queues/api/queues/sessions/pause`, { method: "PUT", headers: admin })
      expect(pause.status).toBe(405)

      const unknown = yield* http(`${url}/admin/queues/no/such/page`, { headers: admin })
      expect(unknown.status).toBe(404)
    })
  )
})

describe("metrics and the dashboard without ADMIN_TOKEN", () => {
  it.live("production: /metrics is 404 NOT_FOUND (off), /admin/queues 404 as an unknown route", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const metrics = yield* http(`${url}/metrics`)
      expect(metrics.status).toBe(404)
      expect(metrics.body).toEqual({
        success: false,
        error: { code: "NOT_FOUND", message: "Metrics are off: ADMIN_TOKEN is unset in production" }
      })
      for (const path of ["/admin/queues", "/admin/queues/api/queues"]) {
        const res = yield* http(`${url}${path}`)
        expect(res.status).toBe(404)
        expect(res.body).toMatchObject({ success: false, error: { code: "ROUTE_NOT_FOUND" } })
      }
    }).pipe(
      Effect.provide(
        testServer({
          db: TestDb(),
          config: {
            NODE_ENV: "production",
            ALLOW_EMBEDDED_IN_PRODUCTION: "true",
            CLERK_JWT_KEY: testKeys.publicKeyPem,
            CLERK_WEBHOOK_SIGNING_SECRET: "whsec_dGVzdA=="
          }
        })
      )
    )
  )

  it.live("development: both open (the in-process queue has no BullMQ queue to list)", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const metrics = yield* http(`${url}/metrics`)
      expect(metrics.status).toBe(200)
      expect(sample(metrics.text, "wingmate_queue_jobs", { queue: "sessions", state: "waiting" })).toBe(0)
      expect((yield* http(`${url}/admin/queues`)).status).toBe(200)
      const api = yield* http(`${url}/admin/queues/api/queues`)
      expect(api.status).toBe(200)
      expect((api.body as { queues: ReadonlyArray<unknown> }).queues).toEqual([])
    }).pipe(Effect.provide(testServer({ db: TestDb(), config: { NODE_ENV: "development" } })))
  )
})

describe("metrics of a provider that fails", () => {
  it.live("the failed attempt is counted with its outcome, and its circuit shows open", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "metrics-ai-down")
      const res = yield* generateJson(url, user.headers, { profile: { name: "Sam" }, count: 1 })
      expect(res.status).toBe(503)
      const text = (yield* http(`${url}/metrics`)).text
      expect(
        sample(text, "wingmate_ai_calls_total", { provider: "gpt-4o", feature: "openers", outcome: "error" })
      ).toBeGreaterThan(0)
      expect(sample(text, "wingmate_ai_circuit_state", { provider: "gpt-4o", state: "open" })).toBe(1)
      expect(sample(text, "wingmate_ai_circuit_state", { provider: "gpt-4o", state: "closed" })).toBe(0)
    }).pipe(
      Effect.provide(
        testServer({
          db: TestDb(),
          config: {
            NODE_ENV: "development",
            OPENAI_API_KEY: "test",
            OPENAI_BASE_URL: openai.url,
            AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
            AI_PROVIDER_STRATEGY_FALLBACKS: "claude-sonnet",
            AI_BREAKER_FAILURES: "1",
            AI_DAILY_SPEND_CAP_MICROS: "0"
          }
        })
      )
    )
  )
})

const freePort = Effect.async<number>((resume) => {
  const server = createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

describe("the worker's health port", () => {
  it.live("GET /metrics there: the worker's metrics with the admin token, 401 without", () =>
    Effect.gen(function* () {
      const port = yield* freePort
      const worker = WorkerLivenessLive.pipe(
        Layer.provide(Metrics.layer("wingmate-worker", { queues: [], circuits: Option.none() })),
        Layer.provide(AppConfig.Default),
        Layer.provide(testConfig({ WORKER_HEALTH_PORT: String(port), ADMIN_TOKEN }))
      )
      yield* Effect.gen(function* () {
        const url = `http://127.0.0.1:${port}`
        // The worker's own little server: its answers are its own, not the api's documented ones.
        notTheApiServer(url)
        const refused = yield* http(`${url}/metrics`)
        expect(refused.status).toBe(401)
        expect(refused.body).toEqual(unauthorized)
        const allowed = yield* http(`${url}/metrics`, { headers: admin })
        expect(allowed.status).toBe(200)
        expect(allowed.headers.get("content-type")).toBe("text/plain")
        expect(allowed.text).toMatch(/^target_info\{[^}]*service_name="wingmate-worker"/m)
        expect((yield* http(`${url}/health/live`)).status).toBe(200)
      }).pipe(Effect.provide(worker))
    })
  )
})
