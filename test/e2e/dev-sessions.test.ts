/**
 * End to end: a session on `src/main/dev.ts` as a child process with no DATABASE_URL, no
 * REDIS_URL and no AI key (PGlite, in-process queue and progress bus, local OCR, local provider):
 * upload a PNG chat screenshot, create a session, poll GET until `completed`; and the same
 * session followed over the WebSocket gateway with a dev token.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { assertFontsRender, chatScreenshotPng } from "../fixtures/chat-screenshot.ts"
import type { Ticket } from "../support/uploads.ts"
import { cleanEnv, freePort, type Running, start, waitForReady } from "../support/processes.ts"
import { connectAs, followToEnd, ofType } from "../support/ws.ts"

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
    await waitForReady(url, server)
  })

  afterAll(() => {
    server.child.kill("SIGKILL")
    rmSync(dataDir, { recursive: true, force: true })
  })

  const devToken = async (name: string) => {
    const script = start("scripts/dev-token.ts", cleanEnv({ DATA_DIR: dataDir }), [name])
    expect(await script.exited).toBe(0)
    return script.output().trim().split("\n").at(-1) ?? ""
  }

  const newSession = async (auth: Record<string, string>) => {
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
    return ((await session.json()) as { data: WireSession }).data.id
  }

  it("upload → create (202) → GET shows completed, with the transcript read by local OCR and local suggestions", async () => {
    const auth = { authorization: `Bearer ${await devToken("carol")}` }
    const id = await newSession(auth)

    // Until it ends (no deadline of its own: the test's timeout is the guard).
    let current: WireSession | undefined
    for (;;) {
      const res = await fetch(`${url}/api/v1/sessions/${id}`, { headers: auth })
      current = ((await res.json()) as { data: WireSession }).data
      if (current.status !== "queued" && current.status !== "processing") break
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    expect(current?.status).toBe("completed")
    const words = (current?.transcript ?? []).map((message) => message.text).join(" ")
    expect(words).toMatch(/hiking/i)
    // Local OCR: the centred date lines are chrome (their times go to the messages below them).
    expect(new Set((current?.transcript ?? []).map((message) => message.sender))).toEqual(new Set(["me", "them"]))
    expect(current?.suggestions).toHaveLength(3)
    for (const suggestion of current?.suggestions ?? []) expect(suggestion.text).toMatch(/\[local \d\]$/)
    expect(server.output()).toContain('Job queue \\"sessions\\": in-process')
    // No message text reaches the log.
    expect(server.output()).not.toMatch(/hiking/i)
  })

  it("a WebSocket client authenticates with a dev token, subscribes to a new session and gets its events through completed", async ({
    signal
  }) => {
    const token = await devToken("dave")
    const id = await newSession({ authorization: `Bearer ${token}` })
    const events = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const socket = yield* connectAs(url, token)
          yield* socket.send({ type: "subscribe", sessionId: id, afterSeq: 0 })
          yield* socket.next(ofType("subscribed"))
          return yield* followToEnd(socket, id)
        })
      ),
      { signal }
    )
    const kinds = events.map((event) => event["event"])
    expect(kinds.at(-1)).toBe("completed")
    expect(kinds).toContain("transcript")
    expect(kinds.filter((kind) => kind === "suggestion")).toHaveLength(3)
  })
})
