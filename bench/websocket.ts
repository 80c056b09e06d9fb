/**
 * WebSocket footprint: how many authenticated connections one api process holds and what each
 * costs in memory, next to a bare `ws` server holding the same number of plain connections (the
 * floor), both started as child processes in the same run. Per server: RSS when idle, RSS with
 * N connections open (each authenticated on Wingmate), memory per connection, and the JSON
 * ping → pong round trip across the held connections (p50, p99) while they are all open.
 * "Idle" is after a warm-up: 100 connections opened the same way, pinged and closed, so that what
 * the first connections pay once (compiled code, the token check's and the user read's modules,
 * V8's young generation grown to its working size) is not spread over the held ones.
 *
 * Wingmate runs as `npm start` (src/main/api.ts) on a fresh, migrated PostgreSQL database (dropped at
 * the end), no Redis (in-process bus), tokens signed with the tests' key (CLERK_JWT_KEY, networkless),
 * 500 connections per bench user (WS_MAX_CONNECTIONS_PER_USER raised to that) and rate limits off
 * (a whole fleet of clients from one address).
 *
 *   npm run bench:websocket               (5000 connections)
 *   npm run bench:websocket -- --quick    (1000 connections)
 *   BENCH_CONNECTIONS overrides; BENCH_CPU_PROF=<dir> profiles the api (node --cpu-prof).
 *   Writes bench/results/websocket.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import WebSocket from "ws"
import { TEST_AUTHORIZED_PARTY, testKeys, tokenFor } from "../test/support/auth.ts"
import { freePort } from "../test/support/processes.ts"
import {
  baseEnv,
  freshDatabase,
  httpOk,
  memoryOf,
  percentile,
  root,
  type Running,
  sleep,
  start,
  stop,
  table,
  waitFor
} from "./support.ts"

const quick = process.argv.includes("--quick")
const connections = Number(process.env["BENCH_CONNECTIONS"] ?? (quick ? "1000" : "5000"))
const pings = quick ? 1000 : 3000
const cpuProfDir = process.env["BENCH_CPU_PROF"]

const rssOf = (running: Running) => memoryOf(running.pid)?.rssMiB ?? Number.NaN

/** RSS once it stops moving (two samples 500 ms apart within 1 MiB), in MiB. */
const settledRss = async (running: Running) => {
  let last = rssOf(running)
  for (let i = 0; i < 20; i++) {
    await sleep(500)
    const now = rssOf(running)
    if (Math.abs(now - last) < 1) return now
    last = now
  }
  return last
}

/** Opens `count` sockets, `batch` at a time; `ready` resolves once a socket may be counted as held. */
const openAll = async (url: string, count: number, ready: (ws: WebSocket) => Promise<void>) => {
  const sockets: Array<WebSocket> = []
  const batch = 100
  for (let i = 0; i < count; i += batch) {
    const opened = await Promise.all(
      Array.from({ length: Math.min(batch, count - i) }, async () => {
        const ws = new WebSocket(url, { perMessageDeflate: false })
        await new Promise<void>((resolve, reject) => {
          ws.once("open", () => resolve())
          ws.once("error", reject)
        })
        await ready(ws)
        return ws
      })
    )
    sockets.push(...opened)
  }
  return sockets
}

const nextMessage = (ws: WebSocket) =>
  new Promise<Record<string, unknown>>((resolve) => {
    ws.once("message", (data) => {
      const parsed: unknown = JSON.parse(data.toString())
      resolve(typeof parsed === "object" && parsed !== null ? { ...parsed } : {})
    })
  })

/** JSON ping → pong round trips over a sample of the held sockets, one at a time. */
const pingRoundTrips = async (sockets: ReadonlyArray<WebSocket>, count: number) => {
  const times: Array<number> = []
  for (let i = 0; i < count; i++) {
    const ws = sockets[(i * 7919) % sockets.length]
    if (ws === undefined) continue
    const started = performance.now()
    const reply = nextMessage(ws)
    ws.send(JSON.stringify({ type: "ping", t: i }))
    const pong = await reply
    if (pong["type"] !== "pong") throw new Error(`unexpected reply: ${JSON.stringify(pong)}`)
    times.push(performance.now() - started)
  }
  return times
}

interface Result {
  readonly server: string
  readonly connections: number
  /** RSS once booted, before the warm-up. */
  readonly bootRssMb: number
  readonly idleRssMb: number
  readonly heldRssMb: number
  readonly kbPerConnection: number
  readonly openSeconds: number
  readonly pingP50Ms: number
  readonly pingP99Ms: number
}

/** Connections opened, pinged and closed before the idle sample (`BENCH_WS_WARMUP`; 0: none). */
const warmupConnections = Number(process.env["BENCH_WS_WARMUP"] ?? "100")

const measure = async (
  server: string,
  running: Running,
  url: string,
  ready: (ws: WebSocket, phase: "warm-up" | "held") => Promise<void>
): Promise<Result> => {
  const bootRssMb = await settledRss(running)
  if (warmupConnections > 0) {
    const warm = await openAll(url, warmupConnections, (ws) => ready(ws, "warm-up"))
    await pingRoundTrips(warm, warmupConnections)
    await Promise.all(
      warm.map(
        (ws) =>
          new Promise<void>((resolve) => {
            ws.once("close", () => resolve())
            ws.close()
          })
      )
    )
  }
  const idleRssMb = warmupConnections > 0 ? await settledRss(running) : bootRssMb
  const started = performance.now()
  const sockets = await openAll(url, connections, (ws) => ready(ws, "held"))
  const openSeconds = (performance.now() - started) / 1000
  const heldRssMb = await settledRss(running)
  const times = await pingRoundTrips(sockets, pings)
  for (const ws of sockets) ws.terminate()
  return {
    server,
    connections: sockets.length,
    bootRssMb,
    idleRssMb,
    heldRssMb,
    kbPerConnection: ((heldRssMb - idleRssMb) * 1024) / sockets.length,
    openSeconds,
    pingP50Ms: percentile(times, 0.5),
    pingP99Ms: percentile(times, 0.99)
  }
}

const main = async () => {
  const workDir = mkdtempSync(join(tmpdir(), "wingmate-bench-ws-"))
  const database = await freshDatabase(`wingmate_bench_ws_${process.pid}`)
  const running: Array<Running> = []
  try {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    const nodeArgs = cpuProfDir === undefined ? [] : ["--cpu-prof", "--cpu-prof-dir", cpuProfDir]
    const wingmate = start(
      "wingmate",
      "src/main/api.ts",
      {
        ...baseEnv(),
        // api.ts is production unless told otherwise; this bench measures the gateway, not the checks.
        NODE_ENV: "development",
        PORT: String(port),
        HOST: "127.0.0.1",
        DATABASE_URL: database.databaseUrl,
        DATA_DIR: join(workDir, "data"),
        CLERK_JWT_KEY: testKeys.publicKeyPem,
        CLERK_AUTHORIZED_PARTIES: TEST_AUTHORIZED_PARTY,
        LOG_LEVEL: "Warning",
        WS_MAX_CONNECTIONS_PER_USER: "500",
        WS_IDLE_TIMEOUT_MS: "3600000",
        RATE_LIMIT_ENABLED: "false",
        // One address opens every connection here.
        HTTP_MAX_CONNECTIONS_PER_ADDRESS: "0"
      },
      join(workDir, "wingmate.log"),
      nodeArgs
    )
    running.push(wingmate)
    await waitFor("wingmate ready", httpOk(`${url}/health/ready`), wingmate)
    // 500 connections per user: a per-user cap exists, and many users is the realistic shape.
    const tokens = Array.from({ length: Math.ceil(connections / 500) }, (_, i) =>
      tokenFor({ clerkId: `user_bench_ws_${i}`, expiresIn: 7200 })
    )
    const warmupToken = tokenFor({ clerkId: "user_bench_ws_warmup", expiresIn: 7200 })
    let opened = 0
    const wingmateResult = await measure(
      "Wingmate /ws (authenticated)",
      wingmate,
      `ws://127.0.0.1:${port}/ws`,
      async (ws, phase) => {
        const reply = nextMessage(ws)
        // The warm-up's user is its own: the held connections' per-user counts stay as they were.
        const token = phase === "warm-up" ? warmupToken : tokens[Math.floor(opened++ / 500)]
        ws.send(JSON.stringify({ type: "auth", token }))
        const ok = await reply
        if (ok["type"] !== "auth.ok") throw new Error(`auth refused: ${JSON.stringify(ok)}`)
      }
    )
    await stop(wingmate)

    const barePort = await freePort()
    const bare = start(
      "bare ws",
      "bench/baselines/bare-ws/server.ts",
      { ...baseEnv(), PORT: String(barePort) },
      join(workDir, "bare.log")
    )
    running.push(bare)
    await waitFor(
      "bare ws listening",
      () =>
        new Promise<boolean>((resolve) => {
          const probe = new WebSocket(`ws://127.0.0.1:${barePort}`)
          probe.once("open", () => {
            probe.terminate()
            resolve(true)
          })
          probe.once("error", () => resolve(false))
        }),
      bare
    )
    const bareResult = await measure("bare ws server (floor)", bare, `ws://127.0.0.1:${barePort}`, async () => {})
    await stop(bare)

    const results = [wingmateResult, bareResult]
    console.log(
      `\nWebSocket footprint: ${connections} connections per server after a warm-up of ${warmupConnections} (Node ${process.version})\n`
    )
    console.log(
      table(
        [
          "server",
          "connections",
          "booted RSS MiB",
          "idle RSS MiB (after warm-up)",
          "RSS held MiB",
          "KiB per connection",
          "open s",
          "ping p50 ms",
          "ping p99 ms"
        ],
        results.map((r) => [
          r.server,
          String(r.connections),
          r.bootRssMb.toFixed(1),
          r.idleRssMb.toFixed(1),
          r.heldRssMb.toFixed(1),
          r.kbPerConnection.toFixed(1),
          r.openSeconds.toFixed(1),
          r.pingP50Ms.toFixed(2),
          r.pingP99Ms.toFixed(2)
        ])
      )
    )
    const ratio = wingmateResult.kbPerConnection / bareResult.kbPerConnection
    console.log(`\nmemory per connection, Wingmate ÷ bare ws: ${ratio.toFixed(2)}×`)
    mkdirSync(join(root, "bench", "results"), { recursive: true })
    writeFileSync(
      join(root, "bench", "results", "websocket.json"),
      JSON.stringify(
        { connections, warmupConnections, node: process.version, results, perConnectionRatio: ratio },
        null,
        2
      )
    )
  } finally {
    for (const process of running) await stop(process)
    await database.drop()
    rmSync(workDir, { recursive: true, force: true })
  }
}

await main()
