/**
 * The CPU one streamed screenshot read costs this process, layer by layer, against a fake provider
 * in its own process that answers at once (only the client's work is measured): the SDK's stream
 * iterated by a plain loop (the floor), the provider adapter's Effect stream, the AiStrategy's
 * `streamObject` (chain, ledger, decode) and the Ocr's read (each message scanned out and handed
 * over). The answer is the latency bench's transcript, in deltas of 8 tokens (Gemini's pace) and of
 * one token (OpenAI's and Claude's).
 * Prints a table and writes bench/results/streamed-read.json.
 *   Run: npm run bench:streamed-read [-- --quick]
 */
import { GoogleGenAI } from "@google/genai"
import { fork } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { Effect, Layer, Redacted, Ref, Stream } from "effect"
import { makeGeminiProvider } from "../src/core/ai/gemini.ts"
import { AiLedger, DEFAULT_PRICES, type LedgerEntry } from "../src/core/ai/ledger.ts"
import { AiStrategy } from "../src/core/ai/strategy.ts"
import { LocalOcr } from "../src/core/ocr/local.ts"
import { Ocr } from "../src/core/ocr/ocr.ts"
import { VisionTranscript } from "../src/core/ocr/transcript.ts"
import { ocrPromptV3 } from "../src/modules/sessions/prompts/ocr-v3.ts"

const quick = process.argv.includes("--quick")
const reads = quick ? 60 : 200
const warmup = 20

// The fakes in their own process: their CPU is not this process's.
const fake = fork(new URL("./streamed-read-fake.ts", import.meta.url), [], {
  stdio: ["ignore", "inherit", "inherit", "ipc"]
})
const urls = await new Promise<Readonly<Record<string, string>>>((resolve) =>
  fake.once("message", (message) => resolve(message as Readonly<Record<string, string>>))
)

const apiKey = Redacted.make("bench-key")
const image = { bytes: new Uint8Array(2048).fill(7), mimeType: "image/png" as const }
const context = { feature: "bench.read", userId: "bench-user", sessionId: "bench-session" }
const objectRequest = {
  schema: VisionTranscript,
  system: ocrPromptV3.system,
  prompt: ocrPromptV3.prompt,
  image,
  temperature: 0,
  thinkingBudget: 0,
  localValue: () => ({ messages: [], confidence: 0 })
}

/** The four layers over the fake at `url`, cheapest first. */
const layersOver = async (url: string) => {
  const provider = makeGeminiProvider({ apiKey, model: "gemini-bench", timeoutMs: 10_000, baseUrl: url })
  const sdk = new GoogleGenAI({ apiKey: "bench-key", httpOptions: { baseUrl: url } })
  const { strategy, ocr } = await Effect.runPromise(
    Effect.gen(function* () {
      const entries = yield* Ref.make<ReadonlyArray<LedgerEntry>>([])
      const strategy = yield* AiStrategy.make({
        providers: [provider],
        prices: DEFAULT_PRICES,
        breaker: { failures: 1_000, cooldownMs: 60_000 },
        dailyCapMicros: 0
      }).pipe(Effect.provide(Layer.succeed(AiLedger, AiLedger.inMemory(entries))))
      const ocr = yield* Ocr.make({ prompt: ocrPromptV3, visionTimeoutMs: 10_000 }).pipe(
        Effect.provideService(AiStrategy, strategy),
        Effect.provide(LocalOcr.layer())
      )
      return { strategy, ocr }
    })
  )
  return [
    {
      name: "SDK stream, plain loop (floor)",
      read: async () => {
        let text = ""
        const stream = await sdk.models.generateContentStream({
          model: "gemini-bench",
          contents: [
            { role: "user", parts: [{ inlineData: { mimeType: image.mimeType, data: "BwcH" } }, { text: "x" }] }
          ],
          config: { responseMimeType: "application/json" }
        })
        for await (const chunk of stream) text += chunk.text ?? ""
        return text
      }
    },
    {
      name: "provider adapter (its Effect stream)",
      read: () =>
        Effect.runPromise(
          Stream.runDrain(
            provider.stream({
              system: ocrPromptV3.system,
              prompt: ocrPromptV3.prompt,
              image,
              json: { name: "transcript", schema: {}, example: () => ({}) }
            })
          )
        )
    },
    {
      name: "AiStrategy.streamObject (chain, ledger, decode)",
      read: () => Effect.runPromise(Stream.runDrain(strategy.streamObject(context, objectRequest)))
    },
    {
      name: "Ocr.read (each message scanned out, handed over)",
      read: () => Effect.runPromise(ocr.read(context, image, { onMessage: () => Effect.void }))
    }
  ] as const
}

/** CPU ms per read of each layer: rounds in turn (each layer's share of the JIT's warming and of the machine's noise alike). */
const cpuMsPerRead = async (layers: ReadonlyArray<{ readonly read: () => Promise<unknown> }>) => {
  for (const layer of layers) for (let i = 0; i < warmup; i++) await layer.read()
  const used = layers.map(() => 0)
  const rounds = 10
  for (let round = 0; round < rounds; round++) {
    for (const [index, layer] of layers.entries()) {
      const start = process.cpuUsage()
      for (let i = 0; i < reads / rounds; i++) await layer.read()
      const cpu = process.cpuUsage(start)
      used[index] = (used[index] ?? 0) + cpu.user + cpu.system
    }
  }
  return used.map((micros) => micros / 1000 / reads)
}

const results: Array<{ tokensPerDelta: number; layer: string; cpuMs: number }> = []
for (const tokensPerDelta of [8, 1]) {
  const layers = await layersOver(urls[String(tokensPerDelta)] ?? "")
  const cpu = await cpuMsPerRead(layers)
  layers.forEach((layer, index) => results.push({ tokensPerDelta, layer: layer.name, cpuMs: cpu[index] ?? 0 }))
}
fake.disconnect()

console.log(
  `\nCPU per streamed screenshot read, this process (${process.version}, ${reads} reads each${quick ? ", quick" : ""})\n`
)
console.log("| tokens per delta | layer | CPU ms per read | × the SDK alone |")
console.log("| ---: | --- | ---: | ---: |")

const rows = results.map((row) => ({
  ...row,
  timesSdk: row.cpuMs / (results.find((r) => r.tokensPerDelta === row.tokensPerDelta)?.cpuMs ?? row.cpuMs)
}))
for (const row of rows) {
  console.log(`| ${row.tokensPerDelta} | ${row.layer} | ${row.cpuMs.toFixed(2)} | ${row.timesSdk.toFixed(2)} |`)
}
mkdirSync(new URL("./results/", import.meta.url), { recursive: true })
writeFileSync(new URL("./results/streamed-read.json", import.meta.url), JSON.stringify({ reads, rows }, null, 2))
