/**
 * End to end: a session on `src/main/dev.ts` as a child process with no DATABASE_URL, no
 * REDIS_URL and no AI key (PGlite, in-process queue and progress bus, local OCR, local provider):
 * upload a PNG chat screenshot, create a session, poll GET until `completed`.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { assertFontsRender, chatScreenshotPng } from "../fixtures/chat-screenshot.ts"
import type { Ticket } from "../support/uploads.ts"
import { cleanEnv, freePort, type Running, start, waitForReady } from "../support/processes.ts"

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
