/**
 * Footprint: the resident memory of the processes at rest. `src/main/api.ts` and
 * `src/main/worker.ts` on a fresh migrated database and Redis (a unique QUEUE_PREFIX, its keys
 * deleted at the end), production settings, each started alone; once ready (the api's
 * /health/ready, the worker's "Sessions consumer" log line) and a settle time, VmRSS is sampled
 * from /proc/<pid>/status. The REST baselines (bench/baselines) are measured the same way, for
 * scale. The api and the worker run with the image's Node options (the Dockerfile's
 * NODE_OPTIONS) and bench/footprint-probe.ts, which, once the RSS is sampled, says where it is
 * (heap spaces, external memory, /proc/<pid>/smaps by kind). Prints the tables and writes
 * bench/results/footprint.json.
 *
 *   npm run bench:footprint [-- --quick]     (settle 10 s, or 3 s quick)
 *
 * Env: BENCH_ONLY=api,worker,express,raw (a subset), BENCH_NODE_ARGS (node options for the api and
 * the worker instead of the image's; "" for V8's defaults), BENCH_HEAP_SNAPSHOT=1 (a heap
 * snapshot summed by constructor, and the largest strings), BENCH_APP_ROOT=<dir> (another
 * checkout's api and worker: a before/after).
 *
 * WebSocket connections held and memory per connection: bench/websocket.ts.
 */
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { availableParallelism, tmpdir } from "node:os"
import { join } from "node:path"
import { Redis as IORedis } from "ioredis"
import { TEST_AUTHORIZED_PARTY, testKeys, tokenFor } from "../test/support/auth.ts"
import { freePort } from "../test/support/processes.ts"
import {
  baseEnv,
  freshDatabase,
  httpOk,
  median,
  memoryOf,
  root,
  type Running,
  sleep,
  start,
  stop,
  table,
  waitFor,
  appNodeArgs
} from "./support.ts"

const quick = process.argv.includes("--quick")
const settleMs = quick ? 3_000 : 10_000
const redisUrl = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const queuePrefix = `wm-bench-footprint-${process.pid}`
// The Wingmate processes run with the image's Node flags (appNodeArgs). BENCH_ONLY=api,worker,express,raw: a subset.
const nodeArgs = { api: appNodeArgs("api"), worker: appNodeArgs("worker") }
const only = process.env["BENCH_ONLY"]?.split(",")
// Another checkout's api and worker (a before/after: `git archive <rev> | tar -x -C <dir>`, link
// this checkout's node_modules, `prisma generate` there).
const appRoot = process.env["BENCH_APP_ROOT"] ?? root
// Where each Wingmate process's memory is (bench/footprint-probe.ts), after its RSS is sampled;
// BENCH_HEAP_SNAPSHOT=1 adds a heap snapshot summed by constructor.
const probe = join(root, "bench/footprint-probe.ts")
const workDir = mkdtempSync(join(tmpdir(), "wingmate-bench-footprint-"))

interface Row {
  readonly process: string
  readonly readyMs: number
  readonly rssMiB: number
  readonly peakMiB: number
  readonly breakdown?: Breakdown | undefined
}

/** What bench/footprint-probe.ts writes (the parts printed here). */
interface Breakdown {
  readonly memoryUsage: Record<string, number>
  readonly heap: { readonly committed: number; readonly used: number; readonly external: number }
  readonly spaces: ReadonlyArray<{ readonly space: string; readonly committed: number; readonly used: number }>
  readonly smaps: { readonly kinds: Record<string, number>; readonly topFiles: ReadonlyArray<[string, number]> }
  readonly snapshot?: {
    readonly top: ReadonlyArray<[string, number]>
    readonly largeStrings: ReadonlyArray<{ size: number; head: string }>
  }
}

const probeOf = async (child: Running, file: string): Promise<Breakdown | undefined> => {
  child.child.kill("SIGUSR2")
  await waitFor(`${child.name} breakdown`, async () => existsSync(file), child)
  // Written at once, but read it only once it parses.
  for (let i = 0; i < 50; i++) {
    try {
      return JSON.parse(readFileSync(file, "utf8")) as Breakdown
    } catch {
      await sleep(100)
    }
  }
  return undefined
}

const rows: Array<Row> = []
let drop: (() => Promise<unknown>) | undefined
let exitCode = 0
const running: Array<Running> = []
try {
  const database = await freshDatabase(`wingmate_bench_footprint_${process.pid}`)
  drop = database.drop
  const common = {
    ...baseEnv(),
    NODE_ENV: "production",
    DATABASE_URL: database.databaseUrl,
    CLERK_JWT_KEY: testKeys.publicKeyPem,
    CLERK_AUTHORIZED_PARTIES: TEST_AUTHORIZED_PARTY,
    LOG_LEVEL: "info"
  }
  const wingmate = {
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: queuePrefix,
    LOG_FORMAT: "json",
    HOST: "127.0.0.1",
    DATA_DIR: join(workDir, "data"),
    ALLOW_EMBEDDED_IN_PRODUCTION: "true",
    CLERK_WEBHOOK_SIGNING_SECRET: "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtbm90LXVzZWQ="
  }
  const targets = [
    {
      key: "api",
      name: "api (src/main/api.ts)",
      script: join(appRoot, "src/main/api.ts"),
      extra: wingmate,
      http: true,
      app: true,
      nodeArgs: [...nodeArgs.api, "--import", probe]
    },
    {
      key: "worker",
      name: "worker (src/main/worker.ts)",
      script: join(appRoot, "src/main/worker.ts"),
      extra: wingmate,
      http: false,
      app: true,
      nodeArgs: [...nodeArgs.worker, "--import", probe]
    },
    {
      key: "express",
      name: "baseline: Express 5 + Prisma 7",
      script: "bench/baselines/express/server.ts",
      extra: {},
      http: true,
      app: false,
      nodeArgs: []
    },
    {
      key: "raw",
      name: "baseline: node:http + pg",
      script: "bench/baselines/raw/server.ts",
      extra: {},
      http: true,
      app: false,
      nodeArgs: []
    }
  ].filter((target) => only === undefined || only.includes(target.key))
  for (const [index, target] of targets.entries()) {
    const port = await freePort()
    const logFile = join(workDir, `${index}.log`)
    const probeFile = join(workDir, `${index}.probe.json`)
    const started = performance.now()
    const child = start(
      target.name,
      target.script,
      {
        ...common,
        ...target.extra,
        PORT: String(port),
        PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
        FOOTPRINT_PROBE_FILE: probeFile,
        FOOTPRINT_PROBE_SNAPSHOT: process.env["BENCH_HEAP_SNAPSHOT"] ?? ""
      },
      logFile,
      target.nodeArgs
    )
    running.push(child)
    await waitFor(
      `${target.name} ready`,
      target.http
        ? httpOk(`http://127.0.0.1:${port}/health/ready`)
        : async () => child.output().includes("Sessions consumer"),
      child
    )
    const readyMs = performance.now() - started
    /** Settles, then the median of five RSS samples and the peak. */
    const settled = async () => {
      await sleep(settleMs)
      const samples: Array<{ rssMiB: number; peakMiB: number }> = []
      for (let i = 0; i < 5; i++) {
        const memory = memoryOf(child.pid)
        if (memory !== undefined) samples.push(memory)
        await sleep(200)
      }
      return {
        rssMiB: median(samples.map((sample) => sample.rssMiB)),
        peakMiB: Math.max(...samples.map((sample) => sample.peakMiB))
      }
    }
    rows.push({ process: target.name, readyMs, ...(await settled()) })
    if (target.key === "api") {
      // What a process that has served keeps: the first authenticated request loads what booting did
      // not (Prisma's query compiler among them: the readiness checks go through the pool).
      const response = await fetch(`http://127.0.0.1:${port}/api/v1/sessions?limit=20`, {
        headers: { authorization: `Bearer ${tokenFor({ clerkId: "user_bench_footprint", expiresIn: 3600 })}` }
      })
      if (response.status !== 200) throw new Error(`GET /api/v1/sessions answered ${response.status}`)
      rows.push({ process: "api, after one GET /api/v1/sessions", readyMs, ...(await settled()) })
    }
    if (target.app) {
      const last = rows.pop()
      if (last !== undefined) rows.push({ ...last, breakdown: await probeOf(child, probeFile) })
    }
    await stop(child)
  }
} catch (error) {
  console.error(error instanceof Error ? error.message : error)
  exitCode = 1
} finally {
  await Promise.allSettled(running.map(stop))
  await drop?.().catch(() => undefined)
  const redis = new IORedis(redisUrl)
  let cursor = "0"
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${queuePrefix}:*`, "COUNT", 1000)
    if (keys.length > 0) await redis.del(...keys)
    cursor = next
  } while (cursor !== "0")
  await redis.quit()
  rmSync(workDir, { recursive: true, force: true })
}

console.log(`\nFootprint at rest (${process.version}, ${new Date().toISOString()}, settle ${settleMs / 1000} s)\n`)
console.log(
  table(
    ["process", "ready ms", "idle RSS MiB", "peak RSS MiB"],
    rows.map((row) => [row.process, row.readyMs.toFixed(0), row.rssMiB.toFixed(1), row.peakMiB.toFixed(1)])
  )
)
const mib = (value: number | undefined) => (value === undefined ? "–" : value.toFixed(1))
const broken = rows.flatMap((row) => (row.breakdown === undefined ? [] : [{ process: row.process, ...row.breakdown }]))
if (broken.length > 0) {
  console.log("\nWhere the RSS is (MiB; bench/footprint-probe.ts, after the samples above)\n")
  const kinds = [...new Set(broken.flatMap((row) => Object.keys(row.smaps.kinds)))].sort()
  const spaces = [...new Set(broken.flatMap((row) => row.spaces.map((space) => space.space)))]
  const lines: Array<[string, (row: (typeof broken)[number]) => string]> = [
    ["heap used / committed", (row) => `${mib(row.heap.used)} / ${mib(row.heap.committed)}`],
    [
      "external (of which arrayBuffers)",
      (row) => `${mib(row.memoryUsage["external"])} (${mib(row.memoryUsage["arrayBuffers"])})`
    ],
    ...spaces.map((name): [string, (row: (typeof broken)[number]) => string] => [
      `  ${name} used / committed`,
      (row) => {
        const space = row.spaces.find((entry) => entry.space === name)
        return `${mib(space?.used)} / ${mib(space?.committed)}`
      }
    ]),
    ...kinds.map((kind): [string, (row: (typeof broken)[number]) => string] => [
      `smaps RSS: ${kind}`,
      (row) => mib(row.smaps.kinds[kind])
    ])
  ]
  console.log(
    table(
      ["", ...broken.map((row) => row.process)],
      lines.map(([label, cell]) => [label, ...broken.map(cell)])
    )
  )
  for (const row of broken) {
    console.log(
      `\n${row.process}: files mapped (RSS MiB): ${row.smaps.topFiles.map(([name, size]) => `${name.split("/").slice(-2).join("/")} ${mib(size)}`).join(", ")}`
    )
    if (row.snapshot !== undefined) {
      console.log(
        `heap snapshot, self size by constructor (MiB): ${row.snapshot.top.map(([name, size]) => `${name} ${mib(size)}`).join("; ")}`
      )
      console.log(
        `large strings: ${row.snapshot.largeStrings.map((entry) => `${mib(entry.size)} ${JSON.stringify(entry.head.slice(0, 40))}`).join("; ")}`
      )
    }
  }
}
console.log("\nWebSocket connections held and memory per connection: npm run bench:websocket.")

mkdirSync(join(root, "bench/results"), { recursive: true })
writeFileSync(
  join(root, "bench/results/footprint.json"),
  JSON.stringify(
    {
      at: new Date().toISOString(),
      node: process.version,
      cores: availableParallelism(),
      quick,
      settleMs,
      nodeArgs,
      rows,
      websocket: null,
      ok: exitCode === 0
    },
    null,
    2
  )
)
process.exit(exitCode)
