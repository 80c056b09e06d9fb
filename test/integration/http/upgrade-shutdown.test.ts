/**
 * The api process (`src/main/api.ts`) still stops on SIGTERM after refusing a WebSocket upgrade
 * whose handshake the socket server (`ws`) would reject. `ws` answers such a handshake itself and
 * never calls back, so a request that reached it waited forever on the platform's upgrade (an
 * uninterruptible acquire), and shutdown with it. Such an upgrade is refused before it, with the
 * JSON envelope.
 */
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { rawUpgrade } from "../../support/http.ts"
import { childAppEnv } from "../../support/app-env.ts"
import { cleanEnv, freePort, type Running, start, waitForReady } from "../../support/processes.ts"

const dataDir = mkdtempSync(join(tmpdir(), "wingmate-upgrade-shutdown-"))
const running: Array<Running> = []

afterAll(() => {
  // A process the test saw hang is killed here, not left behind.
  for (const process of running) process.child.kill("SIGKILL")
  rmSync(dataDir, { recursive: true, force: true })
})

describe("an upgrade ws would reject, then SIGTERM", () => {
  it("/rpc and /ws with Sec-WebSocket-Protocol ',', /rpc with a bad key: a 400 envelope, then the api exits on SIGTERM", async () => {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const api = start(
      "src/main/api.ts",
      cleanEnv({
        ...childAppEnv(dataDir),
        RATE_LIMIT_ENABLED: "false",
        PORT: String(port),
        PUBLIC_BASE_URL: url
      })
    )
    running.push(api)
    await waitForReady(url, api)

    const answers = await Effect.runPromise(
      Effect.all([
        rawUpgrade(url, "/rpc", { "sec-websocket-protocol": "," }),
        rawUpgrade(url, "/ws", { "sec-websocket-protocol": "," }),
        rawUpgrade(url, "/rpc", { "sec-websocket-key": "bad" })
      ])
    )
    api.child.kill("SIGTERM")
    // No deadline of its own: the test's timeout is the guard (the api's own shutdown timeout is 10 s).
    expect(await api.exited, api.output()).toBe(0)
    for (const [path, subprotocol, answer] of [
      ["/rpc", "wingmate.rpc.v1", answers[0]],
      ["/ws", "wingmate.v1", answers[1]]
    ] as const) {
      expect(answer.status, `${path}: ${answer.text}`).toBe(400)
      expect(answer.contentType, path).toBe("application/json")
      expect(answer.body, path).toEqual({
        success: false,
        error: {
          code: "BAD_REQUEST",
          message: expect.stringContaining("Sec-WebSocket-Protocol"),
          details: { reason: "malformed-subprotocols", supported: [subprotocol] }
        }
      })
    }
    expect(answers[2]).toMatchObject({
      status: 400,
      body: { success: false, error: { code: "BAD_REQUEST", details: { reason: "malformed-handshake" } } }
    })
  }, 60_000)
})
