/**
 * `npm run bench` (quick, under 5 minutes on a 2-core machine) and `npm run bench:full`: runs the
 * benches one after another (each in its own process, never two at once), reads the JSON each
 * writes to bench/results/, and prints their headline numbers in one table; writes
 * bench/results/summary.json. A bench that fails is reported and the others still run; the exit
 * code is 1 then.
 *
 *   node bench/run.ts [--quick] [--only rest,footprint]
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { availableParallelism, loadavg } from "node:os"
import { join } from "node:path"
import { root, table } from "./support.ts"

const quick = process.argv.includes("--quick")
const onlyIndex = process.argv.indexOf("--only")
const only = onlyIndex === -1 ? undefined : process.argv[onlyIndex + 1]?.split(",")

interface Headline {
  readonly bench: string
  readonly measure: string
  readonly value: string
  readonly versus: string
}

type Json = Record<string, unknown>
const rowsOf = (json: Json) => (Array.isArray(json["rows"]) ? (json["rows"] as Array<Json>) : [])
const num = (value: unknown, digits = 1) => (typeof value === "number" ? value.toFixed(digits) : "–")
/** What a WebSocket server's warm-up connections added to its RSS (booted → idle). */
const oneTime = (row: Json) =>
  typeof row["idleRssMb"] === "number" && typeof row["bootRssMb"] === "number"
    ? `+${(row["idleRssMb"] - row["bootRssMb"]).toFixed(1)}`
    : "–"
const times = (value: unknown) => (typeof value === "number" ? `${value.toFixed(2)}×` : "–")

interface Bench {
  readonly name: string
  readonly script: string
  readonly args: ReadonlyArray<string>
  readonly env?: Record<string, string>
  readonly headlines: (json: Json) => ReadonlyArray<Omit<Headline, "bench">>
}

const benches: ReadonlyArray<Bench> = [
  {
    name: "rest",
    script: "bench/rest.ts",
    args: quick ? ["--quick"] : [],
    headlines: (json) => {
      const summary = Array.isArray(json["summary"]) ? (json["summary"] as Array<Json>) : []
      const ratios = (json["ratios"] ?? {}) as Json
      const rows = summary.map((row) => ({
        measure: `GET /api/v1/sessions, ${String(row["server"])}: req/s (p50 / p99 ms)`,
        value: `${num(row["requestsPerSecond"], 0)} (${num(row["p50Ms"], 0)} / ${num(row["p99Ms"], 0)})`,
        versus: `${num(row["serverCpuUsPerRequest"], 0)} µs CPU/req`
      }))
      return [
        ...rows,
        {
          measure: "Wingmate ÷ Express (goal ≥ 1.5×) · Wingmate ÷ raw (goal ≥ 0.5×)",
          value: `${times(ratios["wingmateOverExpress"])} · ${times(ratios["wingmateOverRaw"])}`,
          versus: "req/s ratios"
        }
      ]
    }
  },
  {
    name: "footprint",
    script: "bench/footprint.ts",
    args: quick ? ["--quick"] : [],
    headlines: (json) =>
      rowsOf(json).map((row) => ({
        measure: `idle RSS MiB, ${String(row["process"])}`,
        value: num(row["rssMiB"]),
        versus: `ready in ${num(row["readyMs"], 0)} ms`
      }))
  },
  {
    name: "websocket",
    script: "bench/websocket.ts",
    args: quick ? ["--quick"] : [],
    headlines: (json) => {
      const results = Array.isArray(json["results"]) ? (json["results"] as Array<Json>) : []
      return results.map((row) => ({
        measure: `${String(row["server"])}: ${num(row["connections"], 0)} connections held, KiB per connection`,
        value: num(row["kbPerConnection"]),
        // The warm-up's connections pay once what later ones do not (bench/websocket.ts).
        versus: `warm-up of ${num(json["warmupConnections"], 0)}: ${oneTime(row)} MiB once; ping p50 / p99 ${num(row["pingP50Ms"], 2)} / ${num(row["pingP99Ms"], 2)} ms`
      }))
    }
  },
  {
    name: "pipeline",
    script: "bench/pipeline.ts",
    args: quick ? ["--quick"] : [],
    headlines: (json) => {
      const summary = (json["summary"] ?? {}) as Json
      return [
        {
          measure: "Sessions end to end: first delta p50 / p99 ms",
          value: `${num(summary["firstDeltaP50Ms"], 0)} / ${num(summary["firstDeltaP99Ms"], 0)}`,
          versus: `raw sharp done ${num(summary["rawDoneP50Ms"], 0)} / ${num(summary["rawDoneP99Ms"], 0)}`
        },
        {
          measure: "Pipeline overhead over raw sharp p50 / p99 ms (goal ≤ 120 / 300)",
          value: `${num(summary["overheadP50Ms"], 0)} / ${num(summary["overheadP99Ms"], 0)}`,
          versus: "first delta − raw sharp done"
        },
        {
          measure: "Sessions/s (one image each) vs raw sharp images/s (goal ≥ 0.8×)",
          value: `${num(summary["pipelineSessionsPerSecond"])} vs ${num(summary["rawSharpImagesPerSecond"])}`,
          versus: times(summary["ratio"])
        },
        {
          measure: "CPU ms per session: worker / api / PostgreSQL / Redis",
          value: ["worker", "api", "postgres", "redis"]
            .map((key) => num(((summary["cpuMsPerSession"] ?? {}) as Json)[key], 0))
            .join(" / "),
          versus: `${num(summary["publishedPerSession"])} events published (${num(summary["deltasPerSession"])} deltas)`
        }
      ]
    }
  },
  {
    name: "latency",
    script: "bench/latency.ts",
    args: quick ? ["--quick"] : [],
    headlines: (json) => {
      const stat = (key: string) => (json[key] ?? {}) as Json
      const pair = (key: string) => `${num(stat(key)["p50"], 0)} / ${num(stat(key)["p99"], 0)}`
      const profile = (json["profile"] ?? {}) as Json
      const load = ((json["load"] ?? {}) as Json)["start"]
      const versus = `${String(profile["model"])} profile, load ${num(Array.isArray(load) ? load[0] : undefined)}`
      return [
        {
          measure: "20 at once, first transcript line on screen p50 / p99 ms (goal p50 ≤ 1500)",
          value: pair("firstLineMs"),
          versus
        },
        { measure: "20 at once, whole transcript p50 / p99 ms", value: pair("transcriptMs"), versus },
        {
          measure: "20 at once, first suggestion token p50 / p99 ms (goal ≤ 2500 / 4000)",
          value: pair("firstSuggestionTokenMs"),
          versus
        },
        { measure: "20 at once, last suggestion p50 / p99 ms", value: pair("lastSuggestionMs"), versus }
      ]
    }
  },
  {
    name: "ai",
    script: "bench/ai.ts",
    args: quick ? ["--quick"] : [],
    headlines: (json) => [
      ...rowsOf(json).map((row) => ({
        measure: `${String(row["name"])}: p50 / p99 ms`,
        value: `${num(row["p50"], 2)} / ${num(row["p99"], 2)}`,
        versus: "–"
      })),
      { measure: "AI chain adds to the first token (p50 ms)", value: num(json["addedP50Ms"], 2), versus: "goal < 5" }
    ]
  },
  {
    name: "streamed-read",
    script: "bench/streamed-read.ts",
    args: quick ? ["--quick"] : [],
    headlines: (json) =>
      rowsOf(json).map((row) => ({
        measure: `streamed read, ${String(row["tokensPerDelta"])} token(s) per delta, ${String(row["layer"])}: CPU ms`,
        value: num(row["cpuMs"], 2),
        versus: times(row["timesSdk"])
      }))
  },
  {
    name: "auth",
    script: "bench/auth.ts",
    args: [],
    headlines: (json) =>
      rowsOf(json).map((row) => ({
        measure: `${String(row["name"])}: p50 / p99 µs`,
        value: `${num(row["p50Micros"])} / ${num(row["p99Micros"])}`,
        versus: "–"
      }))
  },
  {
    name: "progress",
    script: "bench/progress.ts",
    args: quick ? ["--quick"] : [],
    headlines: (json) =>
      rowsOf(json).map((row) => ({
        measure: `${String(row["name"])}: p50 / p99 ms`,
        value: `${num(row["p50"], 3)} / ${num(row["p99"], 2)}`,
        versus: "–"
      }))
  },
  {
    name: "queue",
    script: "bench/queue.ts",
    args: [],
    env: quick ? { BENCH_ROUNDS: "3" } : {},
    headlines: (json) =>
      rowsOf(json).map((row) => ({
        measure: `${String(row["path"])}, concurrency ${num(row["concurrency"], 0)}: process jobs/s`,
        value: num(row["processPerSecond"], 0),
        versus: row["vsRaw"] === undefined ? "–" : `${times(row["vsRaw"])} raw`
      }))
  }
]

const headlines: Array<Headline> = []
const runs: Array<{ bench: string; ok: boolean; seconds: number; result: Json | null }> = []
const started = performance.now()
mkdirSync(join(root, "bench/results"), { recursive: true })
for (const bench of benches) {
  if (only !== undefined && !only.includes(bench.name)) continue
  const resultFile = join(root, "bench/results", `${bench.name}.json`)
  rmSync(resultFile, { force: true })
  console.log(`\n=== ${bench.name}: node ${[bench.script, ...bench.args].join(" ")}\n`)
  const benchStarted = performance.now()
  const child = spawnSync(process.execPath, [bench.script, ...bench.args], {
    cwd: root,
    env: { ...process.env, ...bench.env },
    stdio: "inherit"
  })
  const seconds = (performance.now() - benchStarted) / 1000
  const result = existsSync(resultFile) ? (JSON.parse(readFileSync(resultFile, "utf8")) as Json) : null
  const ok = child.status === 0 && result !== null && result["ok"] !== false
  runs.push({ bench: bench.name, ok, seconds, result })
  if (result !== null)
    headlines.push(...bench.headlines(result).map((headline) => ({ bench: bench.name, ...headline })))
  if (!ok) headlines.push({ bench: bench.name, measure: "FAILED", value: `exit ${child.status}`, versus: "–" })
}
const totalSeconds = (performance.now() - started) / 1000

console.log(
  `\n=== Summary (${quick ? "quick" : "full"}, ${process.version}, ${availableParallelism()} cores, load ${loadavg()
    .map((value) => value.toFixed(1))
    .join(
      " "
    )}, ${totalSeconds.toFixed(0)} s: ${runs.map((run) => `${run.bench} ${run.seconds.toFixed(0)} s`).join(", ")})\n`
)
console.log(
  table(
    ["bench", "measure", "value", "versus"],
    headlines.map((row) => [row.bench, row.measure, row.value, row.versus])
  )
)

writeFileSync(
  join(root, "bench/results/summary.json"),
  JSON.stringify(
    {
      at: new Date().toISOString(),
      node: process.version,
      cores: availableParallelism(),
      quick,
      totalSeconds,
      headlines,
      runs: runs.map(({ bench, ok, seconds }) => ({ bench, ok, seconds })),
      websocket: null
    },
    null,
    2
  )
)
process.exit(runs.every((run) => run.ok) ? 0 : 1)
