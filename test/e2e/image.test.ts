/**
 * What the image holds, without Docker (no daemon here): the runtime tree the Dockerfile's last
 * stage assembles, read from its COPY lines (production dependencies installed as its deps stage
 * does, `--omit=dev --ignore-scripts`; the rest from the build context), then the compose stack's
 * commands run from that tree with the compose environment (hosts mapped to this machine's
 * PostgreSQL and Redis): the one-shot migration on a fresh database, the api, the worker, a dev
 * token, and one session end to end. A file the image lacks fails here. The tree is built with
 * asynchronous commands and copies: a synchronous `npm ci` on a loaded machine would block this
 * test worker past vitest's 60 s reporting deadline.
 */
import { Effect } from "effect"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { cp } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { assertFontsRender, chatScreenshotPng } from "../fixtures/chat-screenshot.ts"
import { awaitFinished, createSession, uploadPng, type WireSession } from "../integration/sessions/support.ts"
import { composeCommand, composeEnvironment } from "../support/compose.ts"
import { freePort, outputContains, waitForReady } from "../support/processes.ts"

const root = join(import.meta.dirname, "..", "..")
const adminUrl = process.env["TEST_DATABASE_ADMIN_URL"] ?? "postgresql://postgres@127.0.0.1:5432/postgres"
const redisUrl = process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379"
const databaseName = `wingmate_image_${process.pid}`

interface Copy {
  readonly stage: string
  readonly from: string
  readonly to: string
}

/** The COPY lines of the Dockerfile's last stage. */
const runtimeCopies = (dockerfile: string): ReadonlyArray<Copy> => {
  const stages = dockerfile.split(/^FROM /m)
  const runtime = stages[stages.length - 1] ?? ""
  return [...runtime.matchAll(/^COPY\s+--from=(\S+)\s+(?:--chown=\S+\s+)?(\S+)\s+(\S+)\s*$/gm)].map(
    ([, stage = "", from = "", to = ""]) => ({ stage, from, to })
  )
}

const withAdmin = async (sql: string) => {
  const client = new pg.Client({ connectionString: adminUrl })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

let tree = ""
const children: Array<ChildProcess> = []

/** `command` (compose's exec form) from the tree, its output collected. */
const run = (command: ReadonlyArray<string>, env: Record<string, string>) => {
  const [, ...args] = command
  const child = spawn(process.execPath, args, {
    cwd: tree,
    env: { PATH: process.env["PATH"] ?? "", HOME: tree, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  children.push(child)
  return { child, output: () => output, exited }
}

beforeAll(async () => {
  tree = mkdtempSync(join(tmpdir(), "wingmate-image-"))
  const copies = runtimeCopies(readFileSync(join(root, "Dockerfile"), "utf8"))
  for (const copy of copies) {
    const relative = copy.from.replace(/^\/app\/?/, "")
    const target = join(tree, copy.to.replace(/^\.\//, ""))
    if (copy.stage === "prod-deps" && relative === "node_modules") {
      // As the deps stage: package.json and the lock file, `npm ci --omit=dev --ignore-scripts`.
      const deps = join(tree, ".prod-deps")
      mkdirSync(deps)
      for (const file of ["package.json", "package-lock.json"]) await cp(join(root, file), join(deps, file))
      await promisify(execFile)(
        "npm",
        ["ci", "--omit=dev", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund"],
        { cwd: deps, env: { ...process.env, CI: "true" }, maxBuffer: 64 * 1024 * 1024 }
      )
      await cp(join(deps, "node_modules"), target, { recursive: true })
      rmSync(deps, { recursive: true, force: true })
    } else if (copy.stage === "build") {
      // The build stage is the context (what .dockerignore lets in) plus the generated Prisma client.
      await cp(join(root, relative), target, { recursive: true })
    } else {
      throw new Error(`unexpected COPY --from=${copy.stage} ${copy.from}: teach this test what it holds`)
    }
  }
  mkdirSync(join(tree, ".data"), { recursive: true })
  await withAdmin(`DROP DATABASE IF EXISTS "${databaseName}" WITH (FORCE)`)
  await withAdmin(`CREATE DATABASE "${databaseName}"`)
  await assertFontsRender()
}, 240_000)

afterAll(async () => {
  for (const child of children) child.kill("SIGKILL")
  await withAdmin(`DROP DATABASE IF EXISTS "${databaseName}" WITH (FORCE)`)
  if (tree !== "") rmSync(tree, { recursive: true, force: true })
})

describe("the image's runtime tree", () => {
  it("holds what the compose stack runs: migration, api, worker, dev token, and a session end to end", async () => {
    const database = new URL(adminUrl)
    database.pathname = `/${databaseName}`
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    // Compose's environment, its hosts (db, cache) mapped to this machine; a queue prefix of this run.
    const mapped = (service: string) => {
      const env = composeEnvironment(["docker-compose.yml"], service)
      return {
        ...env,
        DATABASE_URL: database.toString(),
        REDIS_URL: redisUrl,
        QUEUE_PREFIX: `wm-image-${process.pid}`,
        DATA_DIR: join(tree, ".data"),
        PORT: String(port),
        PUBLIC_BASE_URL: url,
        ...(env["WORKER_HEALTH_PORT"] === undefined ? {} : { WORKER_HEALTH_PORT: "0" })
      }
    }

    const migrate = run(composeCommand("docker-compose.yml", "migrate"), mapped("migrate"))
    expect(await migrate.exited, migrate.output()).toBe(0)
    expect(migrate.output()).toMatch(/applied \d+:/)

    const api = run(composeCommand("docker-compose.yml", "api"), mapped("api"))
    const worker = run(composeCommand("docker-compose.yml", "worker"), mapped("worker"))
    await waitForReady(url, api).catch((error: unknown) => {
      throw new Error(`api not ready: ${String(error)}\n${api.output()}`)
    })

    const token = run(["node", "scripts/dev-token.ts", "alice"], mapped("api"))
    expect(await token.exited, token.output()).toBe(0)
    const headers = { authorization: `Bearer ${token.output().trim().split("\n").at(-1) ?? ""}` }

    const session = await Effect.runPromise(
      Effect.gen(function* () {
        const uploadId = yield* uploadPng(url, headers, yield* Effect.promise(() => chatScreenshotPng()))
        const created = yield* createSession(url, headers, { uploadIds: [uploadId] })
        expect(created.status, created.text).toBe(202)
        return yield* awaitFinished(url, headers, (created.body as { data: WireSession }).data.id)
      })
    )
    expect(session.status, worker.output()).toBe("completed")
    expect(session.transcript.length).toBeGreaterThan(0)
    expect(session.suggestions.length).toBeGreaterThan(0)
    // The row is completed before the worker publishes and logs it: wait for the line, not a race.
    await outputContains(worker.child, worker.output, "Session completed")
  }, 240_000)
})
