/**
 * Real processes for end-to-end tests: a free port, an environment cleared of anything that
 * points at real services or providers, a child running one of the project's scripts, and a
 * wait for readiness.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createServer } from "node:net"
import { join } from "node:path"

const root = join(import.meta.dirname, "..", "..")

export const freePort = () =>
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
export const cleanEnv = (overrides: Record<string, string>): NodeJS.ProcessEnv => {
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

export interface Running {
  readonly child: ChildProcess
  readonly output: () => string
  readonly exited: Promise<number | null>
}

/** Runs `script` (relative to the repository) with Node, collecting stdout and stderr. */
export const start = (script: string, env: NodeJS.ProcessEnv, args: ReadonlyArray<string> = []): Running => {
  const child = spawn(process.execPath, [script, ...args], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  return { child, output: () => output, exited }
}

/**
 * Polls `/health/ready` until 200; answers how long it took. No deadline of its own (a guess that
 * fails slow machines): the caller's hook or test timeout is the guard. Given the child, a child
 * that exits first rejects at once with its output, and polling stops with it.
 */
export const waitForReady = async (url: string, child?: Pick<Running, "exited" | "output">): Promise<number> => {
  const started = Date.now()
  let exited: number | null | undefined
  void child?.exited.then((code) => (exited = code))
  for (;;) {
    if (exited !== undefined) throw new Error(`exited with ${exited} before ready:\n${child?.output() ?? ""}`)
    try {
      if ((await fetch(`${url}/health/ready`)).status === 200) return Date.now() - started
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

/**
 * Resolves once `child`'s output (stdout and stderr, as `output` collects it) contains `text`;
 * rejects with the output if the child exits first. No deadline of its own: the caller's hook or
 * test timeout is the guard. Listen with this after the collecting listeners are attached.
 */
export const outputContains = (child: ChildProcess, output: () => string, text: string) =>
  new Promise<void>((resolve, reject) => {
    const check = () => {
      if (!output().includes(text)) return
      cleanup()
      resolve()
    }
    const onExit = (code: number | null) => {
      cleanup()
      reject(new Error(`exited with ${code} before printing ${JSON.stringify(text)}:\n${output()}`))
    }
    const cleanup = () => {
      child.stdout?.off("data", check)
      child.stderr?.off("data", check)
      child.off("exit", onExit)
    }
    child.stdout?.on("data", check)
    child.stderr?.on("data", check)
    child.once("exit", onExit)
    check()
  })
