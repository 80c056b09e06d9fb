/**
 * What the process benches share: a fresh migrated PostgreSQL database, child processes whose
 * output goes to a file (not through a pipe to the bench, which would charge the bench process
 * for every log line), their CPU time and memory from /proc, and a readiness wait.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { closeSync, openSync, readFileSync } from "node:fs"
import { join } from "node:path"
import pg from "pg"
import { applyMigrations, migrationsDir, pgExecutor } from "../src/core/db/migrations.ts"

export const root = join(import.meta.dirname, "..")

export const adminUrl =
  process.env["BENCH_DATABASE_ADMIN_URL"] ??
  process.env["TEST_DATABASE_ADMIN_URL"] ??
  "postgresql://postgres@127.0.0.1:5432/postgres"

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export const percentile = (samples: ReadonlyArray<number>, q: number) => {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN
}

export const median = (samples: ReadonlyArray<number>) => percentile(samples, 0.5)

export const withClient = async <A>(connectionString: string, run: (client: pg.Client) => Promise<A>): Promise<A> => {
  const client = new pg.Client({ connectionString })
  await client.connect()
  try {
    return await run(client)
  } finally {
    await client.end()
  }
}

/** A fresh database named `name`, migrated with the project's migrations: its URL and a drop. */
export const freshDatabase = async (name: string) => {
  await withClient(adminUrl, (admin) => admin.query(`CREATE DATABASE "${name}"`))
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  const databaseUrl = url.toString()
  const drop = () => withClient(adminUrl, (admin) => admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`))
  try {
    await withClient(databaseUrl, (client) => applyMigrations(pgExecutor(client), migrationsDir))
  } catch (error) {
    await drop()
    throw error
  }
  return { databaseUrl, drop }
}

/** The environment without anything that would point a process at other services or providers. */
export const baseEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (
      !/^(DATABASE_|REDIS_|S3_|STORAGE_|QUEUE_|PROGRESS_|OCR_|AI_|GEMINI_|OPENAI_|ANTHROPIC_|CLERK_|NODE_ENV|PORT|HOST|PUBLIC_BASE_URL|DATA_DIR|LOG_|UPLOAD_|CORS_)/.test(
        key
      )
    ) {
      env[key] = value
    }
  }
  return env
}

export interface Running {
  readonly name: string
  readonly child: ChildProcess
  readonly pid: number
  /** The last 8 KB of its output. */
  readonly output: () => string
  readonly exited: Promise<number | null>
}

/** `node [nodeArgs] script` from the repository root, stdout and stderr appended to `logFile`. */
export const start = (
  name: string,
  script: string,
  env: NodeJS.ProcessEnv,
  logFile: string,
  nodeArgs: ReadonlyArray<string> = []
): Running => {
  const fd = openSync(logFile, "a")
  const child = spawn(process.execPath, [...nodeArgs, script], { cwd: root, env, stdio: ["ignore", fd, fd] })
  closeSync(fd)
  if (child.pid === undefined) throw new Error(`${name} did not start`)
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  const output = () => {
    try {
      return readFileSync(logFile, "utf8").slice(-8192)
    } catch {
      return ""
    }
  }
  return { name, child, pid: child.pid, output, exited }
}

/** SIGTERM (graceful: a --cpu-prof profile is written then), SIGKILL after 15 s. */
export const stop = async (running: Running) => {
  if (running.child.exitCode !== null || running.child.signalCode !== null) return
  running.child.kill("SIGTERM")
  const timer = setTimeout(() => running.child.kill("SIGKILL"), 15_000)
  await running.exited
  clearTimeout(timer)
}

/** Polls `check` until true; fails early when the process exits. */
export const waitFor = async (what: string, check: () => Promise<boolean>, running: Running, deadlineMs = 60_000) => {
  const deadline = Date.now() + deadlineMs
  while (Date.now() < deadline) {
    if (running.child.exitCode !== null) throw new Error(`${running.name} exited:\n${running.output()}`)
    if (await check().catch(() => false)) return
    await sleep(100)
  }
  throw new Error(`${what} not within ${deadlineMs} ms:\n${running.output()}`)
}

export const httpOk = (url: string) => async () => (await fetch(url)).status === 200

const clockTicks = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100
  } catch {
    return 100
  }
})()

/** CPU time (user + system, every thread) of a process so far, in ms; undefined off Linux. */
export const cpuMsOf = (pid: number): number | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks
  } catch {
    return undefined
  }
}

/** This process's CPU time so far (user + system), in ms. */
export const ownCpuMs = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

/** `VmRSS` and `VmHWM` (peak) of a process from /proc, in MiB; undefined off Linux. */
export const memoryOf = (pid: number): { rssMiB: number; peakMiB: number } | undefined => {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1])
    return { rssMiB: kib("VmRSS") / 1024, peakMiB: kib("VmHWM") / 1024 }
  } catch {
    return undefined
  }
}

/** A Markdown table with right-aligned numeric columns. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const widths = header.map((cell, i) => Math.max(cell.length, ...rows.map((row) => (row[i] ?? "").length)))
  const numeric = header.map(
    (_, i) => rows.length > 0 && rows.every((row) => /^[-+]?[\d.,]+[×%]?$|^–$/.test(row[i] ?? ""))
  )
  const line = (cells: ReadonlyArray<string>) =>
    `| ${cells.map((cell, i) => (numeric[i] ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0))).join(" | ")} |`
  return [
    line(header),
    `| ${widths.map((width, i) => (numeric[i] ? `${"-".repeat(Math.max(1, width - 1))}:` : "-".repeat(width))).join(" | ")} |`,
    ...rows.map(line)
  ].join("\n")
}
