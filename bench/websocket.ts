/**
 * WebSocket footprint: how many authenticated connections one api process holds and what each
 * costs in memory, next to a bare `ws` server holding the same number of plain connections (the
 * floor), both started as child processes in the same run. Per server: RSS when idle, RSS with
 * N connections open (each authenticated on Wingmate), memory per connection, and the JSON
 * ping → pong round trip across the held connections (p50, p99) while they are all open.
 *
 * Wingmate runs as `npm start` (src/main/api.ts) on a fresh, migrated PostgreSQL database (dropped at
 * the end), no Redis (in-process bus), dev auth (a temporary DATA_DIR),
 * with 500 connections per bench user (WS_MAX_CONNECTIONS_PER_USER raised to that) and rate limits
 * off (a whole fleet of clients from one address).
 *
 *   npm run bench:websocket               (5000 connections)
 *   npm run bench:websocket -- --quick    (1000 connections)
 *   BENCH_CONNECTIONS overrides; BENCH_CPU_PROF=<dir> profiles the api (node --cpu-prof).
 *   Writes bench/results/websocket.json.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import WebSocket from "ws"
import { freePort, freshDatabase } from "./support.ts"

const quick = process.argv.includes("--quick")
const connections = Number(process.env["BENCH_CONNECTIONS"] ?? (quick ? "1000" : "5000"))
const pings = quick ? 1000 : 3000
const root = join(import.meta.dirname, "..")

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const rssMb = (pid: number | undefined) => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  const kb = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? "0")
  return kb / 1024
}

/** RSS once it stops moving (three samples 500 ms apart within 1 MB), in MB. */
const settledRss = async (pid: number | undefined) => {
  let last = rssMb(pid)
  for (let i = 0; i < 20; i++) {
    await sleep(500)
    const now = rssMb(pid)
    if (Math.abs(now - last) < 1) return now
    last = now
  }
  return last
}

const spawnNode = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv) => {
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  return { child, output: () => output }
}

const waitFor = async (check: () => Promise<boolean> | boolean, what: string, deadlineMs = 60_000) => {
  const started = Date.now()
  while (Date.now() - started < deadlineMs) {
    try {
      if (await check()) return
    } catch {
      // not there yet
    }
    await sleep(100)
  }
  throw new Error(`timed out waiting for ${what}`)
}

const percentile = (values: ReadonlyArray<number>, p: number) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN
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
  readonly idleRssMb: number
  readonly heldRssMb: number
  readonly kbPerConnection: number
  readonly openSeconds: number
  readonly pingP50Ms: number
  readonly pingP99Ms: number
}

const measure = async (
  server: string,
  child: ChildProcess,
  url: string,
  ready: (ws: WebSocket) => Promise<void>
): Promise<Result> => {
  const idleRssMb = await settledRss(child.pid)
  const started = performance.now()
  const sockets = await openAll(url, connections, ready)
  const openSeconds = (performance.now() - started) / 1000
  const heldRssMb = await settledRss(child.pid)
  const times = await pingRoundTrips(sockets, pings)
  for (const ws of sockets) ws.terminate()
  return {
    server,
    connections: sockets.length,
    idleRssMb,
    heldRssMb,
    kbPerConnection: ((heldRssMb - idleRssMb) * 1024) / sockets.length,
    openSeconds,
    pingP50Ms: percentile(times, 50),
    pingP99Ms: percentile(times, 99)
  }
}

/** The floor: a bare `ws` server that answers JSON pings, nothing else. */
const BARE_SERVER = `
import { WebSocketServer } from "ws"
const wss = new WebSocketServer({ port: Number(process.env.PORT), host: "127.0.0.1", perMessageDeflate: false })
wss.on("connection", (ws) => ws.on("message", (data) => {
  const frame = JSON.parse(data.toString())
  if (frame.type === "ping") ws.send(JSON.stringify({ type: "pong", t: frame.t }))
}))
wss.on("listening", () => console.log("listening"))
`

const main = async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "wingmate-bench-ws-"))
  const children: Array<ChildProcess> = []
  const database = await freshDatabase("ws")
  try {
    // Wingmate, as `npm run dev` runs it.
    const port = await freePort()
    const profile = process.env["BENCH_CPU_PROF"]
    const wingmate = spawnNode([...(profile ? ["--cpu-prof", `--cpu-prof-dir=${profile}`] : []), "src/main/api.ts"], {
      DATABASE_URL: database.url,
      PATH: process.env["PATH"],
      HOME: process.env["HOME"],
      PORT: String(port),
      HOST: "127.0.0.1",
      DATA_DIR: dataDir,
      LOG_LEVEL: "Warning",
      WS_MAX_CONNECTIONS_PER_USER: "500",
      WS_IDLE_TIMEOUT_MS: "3600000",
      RATE_LIMIT_ENABLED: "false"
    })
    children.push(wingmate.child)
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/health/ready`)).status === 200, "the api").catch(
      (error: unknown) => {
        console.error(wingmate.output())
        throw error
      }
    )
    // 500 connections per user (a per-user cap exists; many users is also the realistic shape).
    const tokens = await Promise.all(
      Array.from(
        { length: Math.ceil(connections / 500) },
        (_, i) =>
          new Promise<string>((resolve, reject) => {
            const script = spawnNode(["scripts/dev-token.ts", `bench${i}`], {
              PATH: process.env["PATH"],
              HOME: process.env["HOME"],
              DATA_DIR: dataDir
            })
            script.child.on("exit", (code) =>
              code === 0 ? resolve(script.output().trim().split("\n").at(-1) ?? "") : reject(new Error(script.output()))
            )
          })
      )
    )
    let opened = 0
    const wingmateResult = await measure(
      "Wingmate /ws (authenticated)",
      wingmate.child,
      `ws://127.0.0.1:${port}/ws`,
      async (ws) => {
        const reply = nextMessage(ws)
        ws.send(JSON.stringify({ type: "auth", token: tokens[Math.floor(opened++ / 500)] }))
        const ok = await reply
        if (ok["type"] !== "auth.ok") throw new Error(`auth refused: ${JSON.stringify(ok)}`)
      }
    )
    const exited = new Promise((resolve) => wingmate.child.once("exit", resolve))
    wingmate.child.kill("SIGTERM")
    await exited

    const barePort = await freePort()
    const bare = spawnNode(["--input-type=module", "-e", BARE_SERVER], {
      PATH: process.env["PATH"],
      PORT: String(barePort)
    })
    children.push(bare.child)
    await waitFor(() => bare.output().includes("listening"), "the bare ws server")
    const bareResult = await measure("bare ws server (floor)", bare.child, `ws://127.0.0.1:${barePort}`, async () => {})
    bare.child.kill("SIGTERM")

    const results = [wingmateResult, bareResult]
    console.log(`\nWebSocket footprint: ${connections} connections per server (Node ${process.version})\n`)
    console.log(
      "| server | connections | idle RSS MB | RSS held MB | KB per connection | open s | ping p50 ms | ping p99 ms |"
    )
    console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (const r of results) {
      console.log(
        `| ${r.server} | ${r.connections} | ${r.idleRssMb.toFixed(1)} | ${r.heldRssMb.toFixed(1)} | ${r.kbPerConnection.toFixed(1)} | ${r.openSeconds.toFixed(1)} | ${r.pingP50Ms.toFixed(2)} | ${r.pingP99Ms.toFixed(2)} |`
      )
    }
    console.log(
      `\nper connection, Wingmate ÷ bare ws: ${(wingmateResult.kbPerConnection / bareResult.kbPerConnection).toFixed(2)}×`
    )
    mkdirSync(join(root, "bench", "results"), { recursive: true })
    writeFileSync(
      join(root, "bench", "results", "websocket.json"),
      JSON.stringify({ connections, node: process.version, results }, null, 2)
    )
  } finally {
    for (const child of children) child.kill("SIGKILL")
    await database.drop()
    rmSync(dataDir, { recursive: true, force: true })
  }
}

await main()
