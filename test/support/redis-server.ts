/**
 * A private `redis-server` on a free loopback port, persisting nothing: a test or the soak may kill it and
 * start it again on the same port. Never the machine's shared Redis.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { freePort, outputContains } from "./processes.ts"

export interface PrivateRedis {
  readonly port: number
  readonly url: string
  /** SIGKILL: everything in memory is gone (nothing is saved). */
  readonly kill: () => Promise<void>
  /** A new server on the same port, empty. */
  readonly restart: () => Promise<void>
  readonly stop: () => Promise<void>
}

/** `redis-server` on a free loopback port, persisting nothing: ours to stop, never the shared one. */
export const startPrivateRedis = async (): Promise<PrivateRedis> => {
  const port = await freePort()
  let child: ChildProcess | undefined
  const launch = async () => {
    const spawned = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
      { stdio: ["ignore", "pipe", "pipe"] }
    )
    child = spawned
    let output = ""
    spawned.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
    spawned.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
    await outputContains(spawned, () => output, "Ready to accept connections")
  }
  const kill = async () => {
    const current = child
    if (current === undefined || current.exitCode !== null || current.signalCode !== null) return
    const exited = new Promise((resolve) => current.once("exit", resolve))
    current.kill("SIGKILL")
    await exited
  }
  await launch()
  return { port, url: `redis://127.0.0.1:${port}`, kill, restart: launch, stop: kill }
}
