/**
 * `node --import ./bench/footprint-probe.ts <script>`: on SIGUSR2, writes where the process's
 * resident memory is to FOOTPRINT_PROBE_FILE (JSON), for bench/footprint.ts's breakdown:
 * `process.memoryUsage()`, V8's heap spaces (committed and used), and `/proc/self/smaps` summed by
 * kind of mapping (the node binary, other files, V8's heap, other anonymous memory: malloc arenas,
 * WebAssembly code, thread stacks). With FOOTPRINT_PROBE_SNAPSHOT=1 it also sums a heap snapshot
 * by constructor (self size) and writes the largest strings' sizes: slower, and it grows the heap.
 */
import { readFileSync, writeFileSync } from "node:fs"
import { getHeapSnapshot, getHeapSpaceStatistics, getHeapStatistics } from "node:v8"

const file = process.env["FOOTPRINT_PROBE_FILE"]
const MiB = 1024 * 1024

interface Mapping {
  readonly name: string
  readonly rssKiB: number
}

const mappings = (): Array<Mapping> => {
  const result: Array<Mapping> = []
  let current: { name: string; rssKiB: number } | undefined
  for (const line of readFileSync("/proc/self/smaps", "utf8").split("\n")) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line)
    if (header !== null) {
      if (current !== undefined) result.push(current)
      current = { name: header[1] ?? "", rssKiB: 0 }
      continue
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line)
    if (rss !== null && current !== undefined) current.rssKiB = Number(rss[1])
  }
  if (current !== undefined) result.push(current)
  return result
}

/** RSS by kind of mapping, MiB. */
const smapsByKind = () => {
  const kinds: Record<string, number> = {}
  const files: Record<string, number> = {}
  for (const mapping of mappings()) {
    const kind =
      mapping.name === process.execPath || mapping.name.endsWith("/node")
        ? "node binary"
        : mapping.name.startsWith("/")
          ? "other files"
          : mapping.name === ""
            ? "anonymous"
            : mapping.name
    kinds[kind] = (kinds[kind] ?? 0) + mapping.rssKiB / 1024
    if (mapping.name.startsWith("/") && kind === "other files")
      files[mapping.name] = (files[mapping.name] ?? 0) + mapping.rssKiB / 1024
  }
  const topFiles = Object.entries(files)
    .filter(([, mib]) => mib >= 0.5)
    .sort((a, b) => b[1] - a[1])
  return { kinds, topFiles }
}

interface Snapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: Array<string>; readonly node_types: [Array<string>] } }
  readonly nodes: Array<number>
  readonly strings: Array<string>
}

/** A heap snapshot's self sizes by constructor (objects) or type (strings, code, arrays…), MiB. */
const snapshotSummary = async () => {
  const chunks: Array<Buffer> = []
  for await (const chunk of getHeapSnapshot()) chunks.push(chunk as Buffer)
  const parsed = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Snapshot
  const fields = parsed.snapshot.meta.node_fields
  const types = parsed.snapshot.meta.node_types[0]
  const width = fields.length
  const typeAt = fields.indexOf("type")
  const nameAt = fields.indexOf("name")
  const sizeAt = fields.indexOf("self_size")
  const byName: Record<string, number> = {}
  const strings: Array<{ size: number; head: string }> = []
  for (let i = 0; i < parsed.nodes.length; i += width) {
    const type = types[parsed.nodes[i + typeAt] ?? 0] ?? "?"
    const size = parsed.nodes[i + sizeAt] ?? 0
    const name = parsed.strings[parsed.nodes[i + nameAt] ?? 0] ?? ""
    const key =
      type === "object" || type === "closure" || type === "native" ? `${type}: ${name.slice(0, 60)}` : `(${type})`
    byName[key] = (byName[key] ?? 0) + size / MiB
    if ((type === "string" || type === "concatenated string" || type === "sliced string") && size > 256 * 1024)
      strings.push({ size: size / MiB, head: name.slice(0, 80).replace(/\s+/g, " ") })
  }
  return {
    top: Object.entries(byName)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 30),
    largeStrings: strings.sort((a, b) => b.size - a.size).slice(0, 20)
  }
}

const report = async () => {
  const usage = process.memoryUsage()
  const heap = getHeapStatistics()
  const result = {
    memoryUsage: Object.fromEntries(Object.entries(usage).map(([key, value]) => [key, value / MiB])),
    heap: {
      committed: heap.total_heap_size / MiB,
      used: heap.used_heap_size / MiB,
      external: heap.external_memory / MiB,
      mallocedNow: heap.malloced_memory / MiB,
      mallocedPeak: heap.peak_malloced_memory / MiB
    },
    spaces: getHeapSpaceStatistics().map((space) => ({
      space: space.space_name,
      committed: space.space_size / MiB,
      used: space.space_used_size / MiB
    })),
    smaps: smapsByKind(),
    snapshot: process.env["FOOTPRINT_PROBE_SNAPSHOT"] === "1" ? await snapshotSummary() : undefined
  }
  if (file !== undefined) writeFileSync(file, JSON.stringify(result, null, 2))
}

if (file !== undefined) process.on("SIGUSR2", () => void report())
