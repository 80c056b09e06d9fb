/**
 * The resilience suite's harness: the project's own processes (api, worker) as children on this
 * machine's PostgreSQL (the suite's fresh database) and a Redis, a private `redis-server` that a
 * test may kill and start again, users with tokens that outlive the suite, bounded HTTP calls,
 * and the resident memory of a child. Everything talks to loopback only.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { bearer, newClerkId, tokenFor } from "../support/auth.ts"
import { childAppEnv } from "../support/app-env.ts"
import { cleanEnv, freePort, outputContains, type Running, start, waitForReady } from "../support/processes.ts"

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * Polls `check` every `everyMs` until it answers something other than undefined (`what` names it).
 * No deadline of its own: the test's timeout is the guard.
 */
export const until = async <A>(_what: string, check: () => Promise<A | undefined>, everyMs = 100) => {
  for (;;) {
    const found = await check()
    if (found !== undefined) return found
    await sleep(everyMs)
  }
}

// ---- Redis: the private redis-server lives in ../support/redis-server.ts (the soak uses it too)

export { type PrivateRedis, startPrivateRedis } from "../support/redis-server.ts"

// ---- processes --------------------------------------------------------------------------------

export interface Stack {
  /** The environment every process of the stack shares. */
  readonly shared: Record<string, string>
  readonly dataDir: string
  readonly api: (overrides?: Record<string, string>) => Promise<{ readonly url: string; readonly process: Running }>
  readonly worker: (overrides?: Record<string, string>) => Promise<Running>
  /** SIGTERM to every process still running, SIGKILL after 15 s; the data folder removed. */
  readonly stop: () => Promise<void>
}

/**
 * Processes of one test file: a fresh data folder (shared storage), one queue prefix, the test
 * database, the test token key; `env` on top (REDIS_URL, fakes' URLs, timings).
 */
export const stack = (env: Record<string, string>): Stack => {
  const dataDir = mkdtempSync(join(tmpdir(), "wingmate-resilience-"))
  const running: Array<Running> = []
  const shared: Record<string, string> = { ...childAppEnv(dataDir, "wm-res"), ...env }
  const api = async (overrides: Record<string, string> = {}) => {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const child = start(
      "src/main/api.ts",
      cleanEnv({ ...shared, PORT: String(port), HOST: "127.0.0.1", PUBLIC_BASE_URL: url, ...overrides })
    )
    running.push(child)
    try {
      await waitForReady(url, child)
    } catch (error) {
      throw new Error(`api not ready: ${String(error)}\n${child.output()}`, { cause: error })
    }
    return { url, process: child }
  }
  const worker = async (overrides: Record<string, string> = {}) => {
    const child = start("src/main/worker.ts", cleanEnv({ ...shared, ...overrides }))
    running.push(child)
    await outputContains(child.child, child.output, "Consumer started")
    return child
  }
  const stop = async () => {
    await Promise.all(
      running.map(async ({ child, exited }) => {
        if (child.exitCode !== null || child.signalCode !== null) return
        child.kill("SIGTERM")
        const timer = setTimeout(() => child.kill("SIGKILL"), 15_000)
        await exited
        clearTimeout(timer)
      })
    )
    rmSync(dataDir, { recursive: true, force: true })
  }
  return { shared, dataDir, api, worker, stop }
}

/** SIGKILL (`kill -9`) and wait until the process is gone; answers the signal it died of. */
export const killHard = async (running: Running): Promise<NodeJS.Signals | null> => {
  const died = new Promise<NodeJS.Signals | null>((resolve) =>
    running.child.once("exit", (_code, signal) => resolve(signal))
  )
  running.child.kill("SIGKILL")
  return died
}

/** VmRSS of a live process, in bytes, from /proc/<pid>/status. */
export const rssBytes = (pid: number): number => {
  const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
  if (match?.[1] === undefined) throw new Error(`no VmRSS for ${pid}`)
  return Number(match[1]) * 1024
}

// ---- users and HTTP ---------------------------------------------------------------------------

export interface User {
  readonly id: string
  readonly token: string
  readonly headers: Record<string, string>
}

/** A user provisioned through the api, with a token valid for 15 minutes (longer than any test). */
export const newUser = async (apiUrl: string, label: string): Promise<User> => {
  const clerkId = newClerkId(label)
  const token = tokenFor({ clerkId, email: `${clerkId}@test.dev`, expiresIn: 900 })
  const reply = await call(`${apiUrl}/api/v1/users/me`, { headers: bearer(token) })
  if (reply.status !== 200) throw new Error(`could not provision ${label}: ${reply.status} ${reply.text}`)
  return { id: (reply.body as { data: { id: string } }).data.id, token, headers: bearer(token) }
}

export interface Reply {
  /** The HTTP status, or 0 when no answer came within the bound (or the connection failed). */
  readonly status: number
  readonly body: unknown
  readonly text: string
  readonly error?: string
}

/** One request bounded by `timeoutMs`: never hangs a test; a missing answer is status 0. */
export const call = async (url: string, init: RequestInit = {}, timeoutMs = 10_000): Promise<Reply> => {
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) })
    const text = await response.text()
    let body: unknown = text
    try {
      body = JSON.parse(text)
    } catch {
      // not JSON: the text stays
    }
    return { status: response.status, body, text }
  } catch (error) {
    return {
      status: 0,
      body: undefined,
      text: "",
      error: error instanceof Error ? `${error.name}: ${error.message}` : String(error)
    }
  }
}

export interface Loop {
  readonly replies: Array<Reply & { readonly at: number }>
  /** Stops after the request in flight and answers every reply. */
  readonly stop: () => Promise<ReadonlyArray<Reply & { readonly at: number }>>
}

/** A small steady load: `url` requested back to back by `concurrency` callers until stopped. */
export const loop = (url: string, init: RequestInit, concurrency = 2, timeoutMs = 10_000): Loop => {
  const replies: Array<Reply & { readonly at: number }> = []
  let running = true
  const caller = async () => {
    while (running) {
      const reply = await call(url, init, timeoutMs)
      replies.push({ ...reply, at: Date.now() })
      // A few requests a second per caller: a load, not a flood.
      await sleep(25)
    }
  }
  const callers = Array.from({ length: concurrency }, caller)
  return {
    replies,
    stop: async () => {
      running = false
      await Promise.all(callers)
      return replies
    }
  }
}

/** The replies grouped by status (and error code), e.g. `{ "200": 120, "503 SERVICE_UNAVAILABLE": 3 }`. */
export const tally = (replies: ReadonlyArray<Reply>): Record<string, number> => {
  const counts: Record<string, number> = {}
  for (const reply of replies) {
    const code =
      typeof reply.body === "object" && reply.body !== null && "error" in reply.body
        ? (reply.body as { error?: { code?: string } }).error?.code
        : undefined
    const key = code === undefined ? String(reply.status) : `${reply.status} ${code}`
    counts[key] = (counts[key] ?? 0) + 1
  }
  return counts
}
