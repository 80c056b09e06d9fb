/**
 * End to end: `src/main/dev.ts` as a child process with no DATABASE_URL (embedded PGlite in a
 * fresh data folder), spoken to over HTTP, stopped with SIGTERM.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import sharp from "sharp"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startFakeProvider } from "../fakes/ai/index.ts"
import type { Ticket } from "../support/uploads.ts"
import { cleanEnv, freePort, outputContains, type Running, start, waitForReady } from "../support/processes.ts"

describe("npm run dev on embedded defaults", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "wingmate-e2e-"))
  let server: Running
  let url: string

  beforeAll(async () => {
    const port = await freePort()
    url = `http://127.0.0.1:${port}`
    server = start("src/main/dev.ts", cleanEnv({ PORT: String(port), DATA_DIR: dataDir, LOG_FORMAT: "json" }))
    await waitForReady(url, server)
  })

  afterAll(() => {
    server.child.kill("SIGKILL")
    rmSync(dataDir, { recursive: true, force: true })
  })

  it("is ready on PGlite, and says so in its log", async () => {
    const response = await fetch(`${url}/health/ready`)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({
      success: true,
      data: { status: "ready", checks: { database: "ok", redis: "not_configured" } }
    })
    expect(server.output()).toContain("DATABASE_URL is unset, using embedded PGlite")
  })

  it("serves its OpenAPI document and an interactive reference that needs no CDN", async () => {
    const openapi = await fetch(`${url}/openapi.json`)
    expect(openapi.status).toBe(200)
    const document = (await openapi.json()) as { openapi: string; paths: Record<string, unknown> }
    expect(document.openapi).toBe("3.1.0")
    expect(Object.keys(document.paths)).toEqual(expect.arrayContaining(["/health/live", "/health/ready"]))
    const docs = await fetch(`${url}/docs`)
    expect(docs.status).toBe(200)
    expect(docs.headers.get("content-type")).toContain("text/html")
    const html = await docs.text()
    expect(html).toContain("api-reference")
    expect(html).not.toMatch(/<script[^>]+src=["']https?:/)
    expect(html).not.toMatch(/<link[^>]+href=["']https?:/)
  })

  it("serves /metrics (Prometheus text) and the queue dashboard at /admin/queues, open in development", async () => {
    await fetch(`${url}/health/live`)
    const metrics = await fetch(`${url}/metrics`)
    expect(metrics.status).toBe(200)
    expect(metrics.headers.get("content-type")).toBe("text/plain")
    const text = await metrics.text()
    expect(text).toMatch(/^http_server_request_duration_seconds_count\{[^}]*route="\/health\/live"/m)
    expect(text).toMatch(/^wingmate_queue_jobs\{queue="sessions",state="waiting"/m)
    expect(text).toMatch(/^target_info\{service_name="wingmate-api"/m)
    const dashboard = await fetch(`${url}/admin/queues`)
    expect(dashboard.status).toBe(200)
    expect(dashboard.headers.get("content-type")).toContain("text/html")
    const queues = await fetch(`${url}/admin/queues/api/queues`)
    expect(queues.status).toBe(200)
    expect(await queues.json()).toMatchObject({ queues: [] })
  })

  it("answers bad input with the envelope", async () => {
    const response = await fetch(`${url}/api/v1/does-not-exist`, { method: "POST", body: "{" })
    expect(response.status).toBe(404)
    expect(await response.json()).toEqual({
      success: false,
      error: { code: "ROUTE_NOT_FOUND", message: "No route for POST /api/v1/does-not-exist" }
    })
  })

  it("logs one JSON line per request with method, path, status, duration and request id", async () => {
    await fetch(`${url}/health/live?secret=token-123`, { headers: { "x-request-id": "e2e-log-check" } })
    // The line is on the server's output once the stream brings it (not after a guessed delay).
    await outputContains(server.child, server.output, "e2e-log-check")
    const lines = server
      .output()
      .split("\n")
      .filter((line) => line.includes("e2e-log-check"))
    expect(lines).toHaveLength(1)
    const entry = JSON.parse(lines[0] ?? "{}") as { annotations: Record<string, unknown> }
    expect(entry.annotations).toMatchObject({
      method: "GET",
      path: "/health/live",
      status: 200,
      requestId: "e2e-log-check",
      durationMs: expect.any(Number)
    })
    expect(server.output()).not.toContain("token-123")
  })

  it("npm run dev:token -- alice gives a token that /api/v1/users/me accepts; no token gets 401", async () => {
    const script = start("scripts/dev-token.ts", cleanEnv({ DATA_DIR: dataDir }), ["alice"])
    expect(await script.exited).toBe(0)
    const token = script.output().trim().split("\n").at(-1) ?? ""
    const me = await fetch(`${url}/api/v1/users/me`, { headers: { authorization: `Bearer ${token}` } })
    expect(me.status).toBe(200)
    expect(await me.json()).toMatchObject({
      success: true,
      data: { email: "alice@dev.wingmate.local", firstName: "Alice" }
    })
    const anonymous = await fetch(`${url}/api/v1/users/me`)
    expect(anonymous.status).toBe(401)
    expect(await anonymous.json()).toEqual({
      success: false,
      error: { code: "UNAUTHORIZED", message: "Authentication failed", details: { reason: "missing-token" } }
    })
  })

  it("uploads a PNG in the app's two steps to the local storage; the server then knows it as verified", async () => {
    expect(server.output()).toContain("S3_BUCKET is unset, using the local disk")
    const script = start("scripts/dev-token.ts", cleanEnv({ DATA_DIR: dataDir }), ["bob"])
    expect(await script.exited).toBe(0)
    const auth = { authorization: `Bearer ${script.output().trim().split("\n").at(-1) ?? ""}` }
    const png = await sharp({ create: { width: 390, height: 844, channels: 3, background: "#f0f0ff" } })
      .png()
      .toBuffer()

    const created = await fetch(`${url}/api/v1/uploads`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ contentType: "image/png", contentLength: png.length, purpose: "session" })
    })
    expect(created.status).toBe(201)
    const ticket = ((await created.json()) as { data: Ticket }).data
    expect(ticket).toMatchObject({
      method: "PUT",
      headers: { "Content-Type": "image/png", "Content-Length": String(png.length) }
    })

    const put = await fetch(ticket.url, { method: ticket.method, headers: ticket.headers, body: png })
    expect(put.status).toBe(200)

    const status = await fetch(`${url}/api/v1/uploads/${ticket.uploadId}`, { headers: auth })
    expect(status.status).toBe(200)
    expect(await status.json()).toMatchObject({
      success: true,
      data: { id: ticket.uploadId, status: "verified", contentType: "image/png", contentLength: png.length }
    })
    // The signed URL (its signature) never reaches the log.
    const signature = new URL(ticket.url).searchParams.get("signature") ?? ""
    expect(signature).not.toBe("")
    expect(server.output()).not.toContain(signature)
  })

  it("streams openers from the local provider as Server-Sent Events; they appear in the history", async () => {
    const script = start("scripts/dev-token.ts", cleanEnv({ DATA_DIR: dataDir }), ["carol"])
    expect(await script.exited).toBe(0)
    const auth = { authorization: `Bearer ${script.output().trim().split("\n").at(-1) ?? ""}` }
    const created = await fetch(`${url}/api/v1/matches`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ name: "Sam", bio: "Climber, coffee snob", interests: ["climbing"] })
    })
    expect(created.status).toBe(201)
    const matchId = ((await created.json()) as { data: { id: string } }).data.id
    const generated = await fetch(`${url}/api/v1/magic-openers/generate`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify({ matchId, count: 2, tone: "witty" })
    })
    expect(generated.status).toBe(200)
    expect(generated.headers.get("content-type")).toContain("text/event-stream")
    // Each event is `id:`, `event:`, `data:` lines; the stream opens with a lone `retry:`.
    const frames = (await generated.text()).split("\n\n").flatMap((frame) => {
      const fields = new Map(
        frame.split("\n").map((line) => [line.slice(0, line.indexOf(":")), line.slice(line.indexOf(":") + 2)])
      )
      const event = fields.get("event")
      return event === undefined ? [] : [{ event, data: JSON.parse(fields.get("data") ?? "null") as unknown }]
    })
    const names = frames.map((frame) => frame.event)
    expect(names[0]).toBe("delta")
    expect(names.filter((name) => name === "done")).toHaveLength(2)
    expect(names.at(-1)).toBe("final")
    expect(frames.at(-1)?.data).toMatchObject({ provider: "local", local: true, blocked: 0 })
    const saved = frames.flatMap((frame) =>
      frame.event === "done" ? [(frame.data as { opener: { id: string; text: string } }).opener] : []
    )
    expect(saved.every((opener) => opener.text.includes("[local"))).toBe(true)
    const history = await fetch(`${url}/api/v1/magic-openers?matchId=${matchId}`, { headers: auth })
    const items = ((await history.json()) as { data: { items: Array<{ id: string }> } }).data.items
    expect(items.map((item) => item.id).sort()).toEqual(saved.map((opener) => opener.id).sort())
  })

  it("stops on SIGTERM with exit code 0", async () => {
    server.child.kill("SIGTERM")
    expect(await server.exited).toBe(0)
    await expect(fetch(`${url}/health/live`)).rejects.toThrow()
  })
})

describe("graceful shutdown", () => {
  it("SIGTERM lets an in-flight request finish, then exits 0", async () => {
    const fake = await startFakeProvider("openai")
    const dataDir = mkdtempSync(join(tmpdir(), "wingmate-e2e-shutdown-"))
    try {
      // The model takes 1.5 s to answer: the request is in flight when SIGTERM arrives.
      fake.setFallback({ kind: "ok", text: "Coffee or tea, Sam?\nClimbing tips for a beginner?", delayMs: 1_500 })
      const port = await freePort()
      const url = `http://127.0.0.1:${port}`
      const server = start(
        "src/main/dev.ts",
        cleanEnv({
          PORT: String(port),
          DATA_DIR: dataDir,
          OPENAI_API_KEY: "test-key",
          OPENAI_BASE_URL: fake.url,
          AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
          AI_PROVIDER_STRATEGY_FALLBACKS: "gpt-4o"
        })
      )
      await waitForReady(url, server)
      const token = start("scripts/dev-token.ts", cleanEnv({ DATA_DIR: dataDir }), ["dave"])
      expect(await token.exited).toBe(0)
      const auth = { authorization: `Bearer ${token.output().trim().split("\n").at(-1) ?? ""}` }
      const inFlight = fetch(`${url}/api/v1/magic-openers/generate`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ profile: { name: "Sam", interests: ["climbing"] }, count: 2 })
      })
      while (fake.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 20))
      server.child.kill("SIGTERM")
      const response = await inFlight
      expect(response.status).toBe(200)
      const body = (await response.json()) as { data: { openers: Array<{ text: string }> } }
      expect(body.data.openers.map((opener) => opener.text)).toEqual([
        "Coffee or tea, Sam?",
        "Climbing tips for a beginner?"
      ])
      expect(await server.exited).toBe(0)
      await expect(fetch(`${url}/health/live`)).rejects.toThrow()
    } finally {
      await fake.close()
      rmSync(dataDir, { recursive: true, force: true })
    }
  })
})

/** Production settings but Redis, pointing at nothing that listens (port 1): checks must not connect. */
const production = {
  NODE_ENV: "production",
  DATABASE_URL: "postgresql://wingmate@127.0.0.1:1/wingmate",
  CLERK_JWT_KEY: "-----BEGIN PUBLIC KEY-----\\nnot-checked-here\\n-----END PUBLIC KEY-----",
  CLERK_WEBHOOK_SIGNING_SECRET: "whsec_dGVzdA==",
  S3_BUCKET: "wingmate-uploads",
  GEMINI_API_KEY: "test"
}

describe("configuration errors at boot", () => {
  it("exit 1 with one readable line per variable and no stack trace", async () => {
    const run = start("src/main/api.ts", cleanEnv({ PORT: "not-a-port", NODE_ENV: "staging", MAX_BODY_BYTES: "0" }))
    expect(await run.exited).toBe(1)
    const output = run.output()
    expect(output).toContain("Invalid configuration:")
    expect(output).toMatch(/^ {2}PORT: invalid value/m)
    expect(output).toMatch(/^ {2}NODE_ENV: invalid value/m)
    expect(output).toMatch(/^ {2}MAX_BODY_BYTES: invalid value/m)
    expect(output).not.toMatch(/^\s+at /m)
  })

  it("production refuses the embedded database, dev auth and local storage", async () => {
    const run = start("src/main/api.ts", cleanEnv({ NODE_ENV: "production" }))
    expect(await run.exited).toBe(1)
    expect(run.output()).toMatch(/^ {2}DATABASE_URL: missing: Required in production/m)
    expect(run.output()).toMatch(
      /^ {2}CLERK_JWT_KEY: missing: Required in production, or CLERK_SECRET_KEY \(dev auth is refused\)/m
    )
    expect(run.output()).toMatch(/^ {2}S3_BUCKET: missing: Required in production \(local disk storage is refused/m)
  })

  it("api.ts and worker.ts are production when nothing says otherwise: nothing set refuses, naming the Clerk keys", async () => {
    for (const script of ["src/main/api.ts", "src/main/worker.ts"]) {
      const run = start(script, cleanEnv({}))
      expect(await run.exited).toBe(1)
      const output = run.output()
      // Every problem at once, on its own line, without a stack trace.
      expect(output).toMatch(/^ {2}CLERK_JWT_KEY: missing: Required in production/m)
      expect(output).toMatch(/^ {2}CLERK_WEBHOOK_SIGNING_SECRET: missing/m)
      expect(output).toMatch(/^ {2}REDIS_URL: missing: Required in production by the (api|worker)/m)
      expect(output).toMatch(/^ {2}GEMINI_API_KEY: missing: Production needs at least one AI provider key/m)
      expect(output).not.toMatch(/^\s+at /m)
    }
  })

  it("production settings without REDIS_URL: api and worker refuse, naming REDIS_URL alone", async () => {
    for (const [script, role] of [
      ["src/main/api.ts", "api"],
      ["src/main/worker.ts", "worker"]
    ] as const) {
      const run = start(script, cleanEnv(production))
      expect(await run.exited).toBe(1)
      const problems = run
        .output()
        .split("\n")
        .filter((line) => /^ {2}\S/.test(line))
      expect(problems).toEqual([
        `  REDIS_URL: missing: Required in production by the ${role} (the sessions queue and progress bus between api and worker processes)`
      ])
    }
  })

  it("--check-config: every problem on its own line and exit 1, or one line and exit 0, connecting to nothing", async () => {
    const refused = start("src/main/worker.ts", cleanEnv({ NODE_ENV: "production", PORT: "x" }), ["--check-config"])
    expect(await refused.exited).toBe(1)
    expect(refused.output()).toMatch(/^ {2}REDIS_URL: missing/m)
    expect(refused.output()).toMatch(/^ {2}PORT: invalid value/m)
    // Complete settings whose database and Redis do not exist: a check that connected would fail or hang.
    const complete = { ...production, REDIS_URL: "redis://127.0.0.1:1" }
    for (const [script, role] of [
      ["src/main/api.ts", "api"],
      ["src/main/worker.ts", "worker"]
    ] as const) {
      const run = start(script, cleanEnv(complete), ["--check-config"])
      expect(await run.exited).toBe(0)
      expect(run.output().trim()).toBe(`Configuration OK for the ${role}`)
    }
  })
})
