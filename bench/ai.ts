/**
 * What the AI chain costs: time to first delta through AiStrategy.streamText next to the same
 * SDK call made directly against the same zero-latency fake provider (the chain's overhead),
 * and how long after the primary's timeout the fallback's first delta arrives.
 * Prints a table and writes bench/results/ai.json.   Run: npm run bench:ai [-- --quick]
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { Effect, Redacted, Stream } from "effect"
import OpenAI from "openai"
import { AiLedger, DEFAULT_PRICES } from "../src/core/ai/ledger.ts"
import { makeOpenAiProvider } from "../src/core/ai/openai.ts"
import { AiStrategy } from "../src/core/ai/strategy.ts"
import { startFakeProvider } from "../test/fakes/ai/index.ts"

const quick = process.argv.includes("--quick")
const runs = quick ? 100 : 400
const fallbackRuns = quick ? 10 : 30
const primaryTimeoutMs = 200

const percentile = (samples: ReadonlyArray<number>, q: number) => {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
}
const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6

const primary = await startFakeProvider("openai")
const fallback = await startFakeProvider("openai")
primary.setFallback({ kind: "ok", text: "Hello there friend", chunks: ["Hello ", "there ", "friend"] })
fallback.setFallback({ kind: "ok", text: "Fallback answer", chunks: ["Fallback ", "answer"] })

const apiKey = Redacted.make("bench-key")
const sdk = new OpenAI({ apiKey: "bench-key", baseURL: `${primary.url}/v1`, maxRetries: 0 })

/** The baseline: the SDK alone, to the first non-empty delta. */
const rawTtft = async () => {
  const start = process.hrtime.bigint()
  const stream = await sdk.chat.completions.create({
    model: "gpt-bench",
    messages: [{ role: "user", content: "hi" }],
    stream: true,
    stream_options: { include_usage: true }
  })
  let ttft = 0
  for await (const chunk of stream) {
    if (ttft === 0 && chunk.choices[0]?.delta.content) ttft = ms(start)
  }
  return ttft
}

const strategyOf = (providers: Parameters<typeof AiStrategy.make>[0]["providers"]) =>
  Effect.runPromise(
    AiStrategy.make({
      providers,
      prices: DEFAULT_PRICES,
      breaker: { failures: 1_000, cooldownMs: 1 },
      dailyCapMicros: 0
    }).pipe(Effect.provide(AiLedger.memory))
  )

const chainTtft = (strategy: AiStrategy["Type"]) => async () => {
  const start = process.hrtime.bigint()
  let ttft = 0
  await Effect.runPromise(
    Stream.runForEach(strategy.streamText({ feature: "bench" }, { prompt: "hi" }), (event) =>
      Effect.sync(() => {
        if (ttft === 0 && event._tag === "Delta") ttft = ms(start)
      })
    )
  )
  return ttft
}

const sample = async (n: number, run: () => Promise<number>) => {
  for (let i = 0; i < Math.min(30, n); i++) await run()
  const out: Array<number> = []
  for (let i = 0; i < n; i++) out.push(await run())
  return out
}

const direct = await strategyOf([
  makeOpenAiProvider({ apiKey, model: "gpt-bench", timeoutMs: 5_000, baseUrl: primary.url })
])
// Interleave the two so that machine noise falls on both alike.
const raw: Array<number> = []
const chained: Array<number> = []
for (let round = 0; round < 4; round++) {
  raw.push(...(await sample(runs / 4, rawTtft)))
  chained.push(...(await sample(runs / 4, chainTtft(direct))))
}

primary.setFallback({ kind: "hang" })
const withFallback = await strategyOf([
  makeOpenAiProvider({ apiKey, model: "gpt-bench", timeoutMs: primaryTimeoutMs, baseUrl: primary.url }),
  makeOpenAiProvider({ apiKey, model: "gpt-bench", timeoutMs: 5_000, baseUrl: fallback.url })
])
const afterTimeout = (await sample(fallbackRuns, chainTtft(withFallback))).map((t) => t - primaryTimeoutMs)

await Promise.all([primary.close(), fallback.close()])

const rows = [
  { name: "SDK alone → fake, time to first delta", samples: raw },
  { name: "AiStrategy.streamText → same fake, time to first delta", samples: chained },
  { name: `fallback's first delta after the primary's ${primaryTimeoutMs} ms timeout`, samples: afterTimeout }
].map(({ name, samples }) => ({
  name,
  runs: samples.length,
  p50: percentile(samples, 0.5),
  p99: percentile(samples, 0.99)
}))
const added = (rows[1]?.p50 ?? 0) - (rows[0]?.p50 ?? 0)

console.log(`\nAI chain overhead (${process.version}, ${new Date().toISOString()}${quick ? ", quick" : ""})\n`)
console.log("| measure | runs | p50 ms | p99 ms |")
console.log("| --- | ---: | ---: | ---: |")
for (const row of rows) console.log(`| ${row.name} | ${row.runs} | ${row.p50.toFixed(2)} | ${row.p99.toFixed(2)} |`)
console.log(`\nLatency the chain adds to the first token (median): ${added.toFixed(2)} ms (goal: under 5 ms)`)
mkdirSync("bench/results", { recursive: true })
writeFileSync(
  "bench/results/ai.json",
  JSON.stringify({ at: new Date().toISOString(), node: process.version, rows, addedP50Ms: added }, null, 2)
)
