/**
 * What the progress bus costs: publish → receive latency across two bus instances on separate
 * Redis connections (two "api processes" in one Node process, so one clock), next to a raw ioredis
 * PUBLISH → message on two connections (the floor), the in-memory bus, and a burst's throughput.
 * Prints a table and writes bench/results/progress.json.   Run: node bench/progress.ts [--quick]
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { randomUUID } from "node:crypto"
import { Context, Effect, Layer, Queue, Schema, Stream } from "effect"
import { Redis as IORedis } from "ioredis"
import { ProgressBus, type ProgressBusShape, type ProgressItem } from "../src/core/progress/progress-bus.ts"

const quick = process.argv.includes("--quick")
const runs = quick ? 500 : 3_000
const burst = quick ? 2_000 : 10_000
const url = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const keyPrefix = `wingmate-bench:progress:${randomUUID().slice(0, 8)}:`

const percentile = (samples: ReadonlyArray<number>, q: number) => {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0
}
const now = () => performance.now()

const Event = Schema.Struct({ n: Schema.Int, text: Schema.String })
const State = Schema.Struct({ n: Schema.Int })
type Item = ProgressItem<typeof Event.Type, typeof State.Type>
// A feed is made once per bus, as a module would (it compiles the schemas' encoders and decoders).
const feeds = new Map<ProgressBusShape, ReturnType<typeof makeFeed>>()
const makeFeed = (bus: ProgressBusShape) => bus.feed({ name: "bench", event: Event, state: State })
const feed = (bus: ProgressBusShape) => {
  const existing = feeds.get(bus)
  if (existing !== undefined) return existing
  const made = makeFeed(bus)
  feeds.set(bus, made)
  return made
}
const text = "a token or two of a suggested reply"

/** publish on `from`, wait for the same event on `to`, `runs` times; milliseconds. */
const pingPong = (from: ProgressBusShape, to: ProgressBusShape, topic: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const received = yield* Queue.unbounded<Item>()
      yield* Effect.forkScoped(Stream.runForEach(feed(to).subscribe(topic), (item) => Queue.offer(received, item)))
      yield* Queue.take(received)
      const samples: Array<number> = []
      for (let n = 1; n <= runs + 100; n++) {
        const start = now()
        yield* feed(from).publish(topic, { n, text }, { state: { n } })
        yield* Queue.take(received)
        if (n > 100) samples.push(now() - start)
      }
      return samples
    })
  )

/** `burst` events published 32 at a time on `from`; events per second until `to` has them all. */
const throughput = (from: ProgressBusShape, to: ProgressBusShape, topic: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const received = yield* Queue.unbounded<Item>()
      yield* Effect.forkScoped(Stream.runForEach(feed(to).subscribe(topic), (item) => Queue.offer(received, item)))
      yield* Queue.take(received)
      const start = now()
      yield* Effect.forEach(
        Array.from({ length: burst }, (_, i) => i + 1),
        (n) => feed(from).publish(topic, { n, text }, { state: { n } }),
        { concurrency: 32, discard: true }
      )
      let last = 0
      while (last < burst) {
        const item = yield* Queue.take(received)
        last = item.seq
      }
      return burst / ((now() - start) / 1000)
    })
  )

const rawPingPong = async () => {
  const publisher = new IORedis(url)
  const subscriber = new IORedis(url)
  const channel = `${keyPrefix}raw`
  await subscriber.subscribe(channel)
  let resolveNext: () => void = () => undefined
  subscriber.on("message", () => resolveNext())
  const samples: Array<number> = []
  for (let n = 1; n <= runs + 100; n++) {
    const start = now()
    const arrived = new Promise<void>((resolve) => (resolveNext = resolve))
    await publisher.publish(channel, JSON.stringify({ seq: n, event: { n, text } }))
    await arrived
    if (n > 100) samples.push(now() - start)
  }
  await Promise.all([publisher.quit(), subscriber.quit()])
  return samples
}

const busOf = (layer: Layer.Layer<ProgressBus>) =>
  Effect.map(Layer.build(layer), (context) => Context.get(context, ProgressBus))

const commands = [new IORedis(url), new IORedis(url)] as const
const result = await Effect.runPromise(
  Effect.scoped(
    Effect.gen(function* () {
      const a = yield* busOf(ProgressBus.redis(commands[0], { keyPrefix, connectionName: "bench-a" }))
      const b = yield* busOf(ProgressBus.redis(commands[1], { keyPrefix, connectionName: "bench-b" }))
      const memory = yield* busOf(ProgressBus.inMemory())
      return {
        redis: yield* pingPong(a, b, "latency"),
        memory: yield* pingPong(memory, memory, "latency"),
        redisRate: yield* throughput(a, b, "burst"),
        memoryRate: yield* throughput(memory, memory, "burst")
      }
    })
  )
)
const raw = await rawPingPong()
const leftover = await commands[0].keys(`${keyPrefix}*`)
if (leftover.length > 0) await commands[0].del(...leftover)
await Promise.all(commands.map((client) => client.quit()))

const rows = [
  { name: "raw ioredis PUBLISH → message (2 connections)", samples: raw },
  { name: "ProgressBus.redis publish → subscriber on another instance", samples: result.redis },
  { name: "ProgressBus.inMemory publish → subscriber", samples: result.memory }
].map(({ name, samples }) => ({
  name,
  runs: samples.length,
  p50: percentile(samples, 0.5),
  p90: percentile(samples, 0.9),
  p99: percentile(samples, 0.99)
}))

console.log(`\nProgress bus latency (${process.version}, ${new Date().toISOString()}${quick ? ", quick" : ""})\n`)
console.log("| path | runs | p50 ms | p90 ms | p99 ms |")
console.log("| --- | ---: | ---: | ---: | ---: |")
for (const row of rows) {
  console.log(`| ${row.name} | ${row.runs} | ${row.p50.toFixed(3)} | ${row.p90.toFixed(3)} | ${row.p99.toFixed(3)} |`)
}
console.log(`\nBurst of ${burst} events, 32 publishes in flight, until the other side has them all:`)
console.log(`  Redis, across instances: ${Math.round(result.redisRate)} events/s`)
console.log(`  in memory:               ${Math.round(result.memoryRate)} events/s`)
mkdirSync("bench/results", { recursive: true })
writeFileSync(
  "bench/results/progress.json",
  JSON.stringify(
    {
      at: new Date().toISOString(),
      node: process.version,
      rows,
      burst,
      rates: { redis: result.redisRate, memory: result.memoryRate }
    },
    null,
    2
  )
)
