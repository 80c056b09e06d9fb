/**
 * End to end: a session on `src/main/dev.ts` as a child process with no DATABASE_URL, no
 * REDIS_URL and no AI key (PGlite, in-process queue and progress bus, local OCR, local provider):
 * upload a PNG chat screenshot, create a session, poll GET until `completed`.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { assertFontsRender, chatScreenshotPng } from "../fixtures/chat-screenshot.ts"
import type { Ticket } from "../support/uploads.ts"

const root = join(import.meta.dirname, "..", "..")

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

/** The machine's environment without anything that points at real services or providers. */
const cleanEnv = (overrides: Record<string, string>): NodeJS.ProcessEnv => {
  const env = { ...process.env }
  for (const key of Object.keys(env)) {
    if (/^(DATABASE_|REDIS_|S3_|STORAGE_|QUEUE_|PROGRESS_|OCR_|AI_|GEMINI_|OPENAI_|ANTHROPIC_)/.test(key))
      delete env[key]
  }
  for (const key of [
    "NODE_ENV",
    "PORT",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "DATA_DIR",
    "PUBLIC_BASE_URL",
    "UPLOAD_SIGNING_SECRET"
  ]) {
    delete env[key]
  }
  return { ...env, ...overrides }
}

interface Running {
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: Promise<number | null>
}

const start = (script: string, env: NodeJS.ProcessEnv, args: ReadonlyArray<string> = []): Running => {
  const child = spawn(process.execPath, [script, ...args], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  return { child, output: () => output, exited }
}

const waitForReady = async (url: string, deadlineMs: number) => {
  const started = Date.now()
  while (Date.now() - started < deadlineMs) {
    try {
      if ((await fetch(`${url}/health/ready`)).status === 200) return
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  throw new Error(`not ready within ${deadlineMs} ms`)
}

interface WireSession {
  readonly id: string
  readonly status: string
  readonly transcript: ReadonlyArray<{ readonly sender: string; readonly text: string }>
  readonly suggestions: ReadonlyArray<{ readonly text: string }>
}

describe("npm run dev: a session from a PNG screenshot, no Redis, no keys", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "wingmate-e2e-sessions-"))
  let server: Running
  let url: string

  beforeAll(async () => {
    await assertFontsRender()
    const port = await freePort()
    url = `http://127.0.0.1:${port}`
    server = start("src/main/dev.ts", cleanEnv({ PORT: String(port), DATA_DIR: dataDir, LOG_FORMAT: "json" }))
    await waitForReady(url, 30_000)
  })

  afterAll(() => {
    server.child.kill("SIGKILL")
    rmSync(dataDir, { recursive: true, force: true })
  })

  it("upload → create (202) → GET shows completed, with the transcript read by local OCR and local suggestions", async () => {
    const script = start("scripts/dev-token.ts", cleanEnv({ DATA_DIR: dataDir }), ["carol"])
    expect(await script.exited).toBe(0)
    const auth = { authorization: `Bearer ${script.output().trim().split("\n").at(-1) ?? ""}` }
    const png = await chatScreenshotPng()

    const created = await fetch(`${url}/api/v1/uploads`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ contentType: "image/png", contentLength: png.length, purpose: "session" })
    })
    expect(created.status).toBe(201)
    const ticket = ((await created.json()) as { data: Ticket }).data
    expect((await fetch(ticket.url, { method: ticket.method, headers: ticket.headers, body: png })).status).toBe(200)

    const session = await fetch(`${url}/api/v1/sessions`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ uploadIds: [ticket.uploadId] })
    })
    expect(session.status).toBe(202)
    const id = ((await session.json()) as { data: WireSession }).data.id

    let current: WireSession | undefined
    const deadline = Date.now() + 45_000
    while (Date.now() < deadline) {
      const res = await fetch(`${url}/api/v1/sessions/${id}`, { headers: auth })
      current = ((await res.json()) as { data: WireSession }).data
      if (current.status !== "queued" && current.status !== "processing") break
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    expect(current?.status).toBe("completed")
    const words = (current?.transcript ?? []).map((message) => message.text).join(" ")
    expect(words).toMatch(/hiking/i)
    expect(new Set((current?.transcript ?? []).map((message) => message.sender))).toEqual(
      new Set(["me", "them", "system"])
    )
    expect(current?.suggestions).toHaveLength(3)
    for (const suggestion of current?.suggestions ?? []) expect(suggestion.text).toMatch(/\[local \d\]$/)
    expect(server.output()).toContain('Job queue \\"sessions\\": in-process')
    // No message text reaches the log.
    expect(server.output()).not.toMatch(/hiking/i)
  })
})
