/**
 * The top self-time functions of a `--cpu-prof` profile, and the share of each package (or of
 * the project's own files), so a bench's profile reads without DevTools.
 *
 *   node bench/cpuprofile-top.ts <file.cpuprofile> [count=30] [--since <µs>] [--until <µs>]
 *
 * `--since`: only the samples taken at or after that monotonic time in µs (V8's profile clock and
 * `process.hrtime` are both CLOCK_MONOTONIC): bench/latency.ts prints the start of its measured
 * rounds, so their profile leaves the boot and the warm-up out. `--until`: and before that time
 * (e.g. a burst's first 700 ms: the work before its vision calls).
 */
import { readFileSync } from "node:fs"

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
}
interface Profile {
  readonly startTime: number
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const optionOf = (name: string, otherwise: number) => {
  const at = process.argv.indexOf(name)
  return at === -1 ? otherwise : Number(process.argv[at + 1])
}
const sinceUs = optionOf("--since", Number.NEGATIVE_INFINITY)
const untilUs = optionOf("--until", Number.POSITIVE_INFINITY)
const options = new Set(["--since", "--until"])
const [file, countArg] = process.argv
  .slice(2)
  .filter((_, i, args) => !options.has(args[i] ?? "") && !options.has(args[i - 1] ?? ""))
if (file === undefined) {
  console.error("usage: node bench/cpuprofile-top.ts <file.cpuprofile> [count]")
  process.exit(2)
}
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const selfUs = new Map<number, number>()
let sampledAt = profile.startTime
profile.samples.forEach((id, i) => {
  sampledAt += profile.timeDeltas[i] ?? 0
  if (sampledAt >= sinceUs && sampledAt < untilUs) selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
})
const total = [...selfUs.values()].reduce((sum, us) => sum + us, 0)

const where = (url: string) => {
  const modules = url.lastIndexOf("node_modules/")
  if (modules !== -1) {
    const rest = url.slice(modules + "node_modules/".length).split("/")
    return rest[0]?.startsWith("@") ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url)
  }
  if (url.includes("/src/")) return `src/${url.slice(url.indexOf("/src/") + 5).split("/")[0] ?? ""}`
  if (url.startsWith("node:")) return "node (lib)"
  return url === "" ? "(native, GC, idle)" : url
}

const functions = new Map<string, number>()
const groups = new Map<string, number>()
for (const [id, us] of selfUs) {
  const frame = byId.get(id)?.callFrame
  if (frame === undefined) continue
  const short = frame.url.replace(/^.*node_modules\//, "").replace(/^.*\/(src|bench|test)\//, "$1/")
  const key = `${frame.functionName || "(anonymous)"} ${short}:${frame.lineNumber + 1}`
  functions.set(key, (functions.get(key) ?? 0) + us)
  const group = ["(idle)", "(program)", "(garbage collector)"].includes(frame.functionName)
    ? frame.functionName
    : where(frame.url)
  groups.set(group, (groups.get(group) ?? 0) + us)
}

const show = (entries: Map<string, number>, count: number) =>
  [...entries]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .forEach(([name, us]) =>
      console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${name}`)
    )

console.log(`${file}: ${(total / 1000).toFixed(0)} ms sampled\n\nBy package or source folder (self time):`)
show(groups, 25)
console.log("\nTop functions (self time):")
show(functions, Number(countArg ?? "30"))
