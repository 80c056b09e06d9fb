/**
 * Job queue throughput: 1,000 no-op jobs through the `JobQueue` BullMQ layer next to raw BullMQ
 * (a `Queue` and a `Worker` with a no-op processor, the same Redis, the same job ids and
 * attempts), at consumer concurrency 1 and 50; the in-process layer for reference. Per round:
 * enqueue 1,000 jobs (50 enqueues in flight), then start a consumer and time until Redis counts
 * 1,000 completed jobs. Rounds alternate between raw and layer. Prints a table and writes
 * bench/results/queue.json.
 *
 *   node bench/queue.ts      (BENCH_ROUNDS=5, BENCH_JOBS=1000, REDIS_URL or redis://127.0.0.1:6379)
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { randomUUID } from "node:crypto"
import { Queue, Worker } from "bullmq"
import { Redis as IORedis } from "ioredis"
import { Deferred, Effect, Exit, Logger, LogLevel, Ref, Schema, Scope } from "effect"
import { makeBullMqJobQueue, makeInProcessJobQueue, type JobQueueShape } from "../src/core/queue/job-queue.ts"

const rounds = Number(process.env["BENCH_ROUNDS"] ?? "5")
const jobs = Number(process.env["BENCH_JOBS"] ?? "1000")
const redisUrl = process.env["REDIS_URL"] ?? "redis://127.0.0.1:6379"
const enqueueParallel = 50

const Payload = Schema.Struct({ sessionId: Schema.String, userId: Schema.String })
const ids = Array.from({ length: jobs }, (_, i) => `job-${i}`)
const payloadOf = (id: string) => ({ sessionId: id, userId: "user-1" })

const admin = new IORedis(redisUrl)
const dropKeys = async (prefix: string) => {
  let cursor = "0"
  do {
    const [next, keys] = await admin.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000)
    if (keys.length > 0) await admin.del(...keys)
    cursor = next
  } while (cursor !== "0")
}

/** Runs `work` over every id, `parallel` at a time. */
const pool = async (parallel: number, work: (id: string) => Promise<unknown>) => {
  const todo = [...ids]
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let id = todo.shift(); id !== undefined; id = todo.shift()) await work(id)
    })
  )
}

/** Waits until Redis counts every job completed (polled every 5 ms, the same for both paths). */
const allCompleted = async (queue: Queue) => {
  for (;;) {
    const { completed = 0 } = await queue.getJobCounts("completed")
    if (completed >= jobs) return
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

interface Sample {
  readonly enqueueMs: number
  readonly processMs: number
}

const rawBullmq = async (concurrency: number): Promise<Sample> => {
  const prefix = `wmbench-${randomUUID()}`
  const queue = new Queue("jobs", { connection: { url: redisUrl }, prefix })
  try {
    const options = { attempts: 3, backoff: { type: "exponential", delay: 2_000 }, removeOnComplete: { age: 3_600 } }
    const enqueueStart = performance.now()
    await pool(enqueueParallel, (id) => queue.add("job", payloadOf(id), { ...options, jobId: id }))
    const enqueueMs = performance.now() - enqueueStart
    const processStart = performance.now()
    const worker = new Worker("jobs", async () => undefined, {
      connection: { url: redisUrl, maxRetriesPerRequest: null },
      prefix,
      concurrency
    })
    await allCompleted(queue)
    const processMs = performance.now() - processStart
    await worker.close()
    return { enqueueMs, processMs }
  } finally {
    await queue.close()
    await dropKeys(prefix)
  }
}

const viaLayer = (kind: "bullmq" | "in-process", concurrency: number): Promise<Sample> => {
  const prefix = `wmbench-${randomUUID()}`
  const program = Effect.gen(function* () {
    const queue: JobQueueShape<typeof Payload.Type> =
      kind === "bullmq"
        ? yield* makeBullMqJobQueue(Payload, { connection: { url: redisUrl }, queueName: "jobs", prefix })
        : yield* makeInProcessJobQueue(Payload, {})
    const enqueueStart = performance.now()
    yield* Effect.forEach(ids, (id) => queue.enqueue(id, payloadOf(id)), {
      concurrency: enqueueParallel,
      discard: true
    })
    const enqueueMs = performance.now() - enqueueStart
    const done = yield* Ref.make(0)
    const all = yield* Deferred.make<void>()
    const consumer = yield* Scope.make()
    const processStart = performance.now()
    yield* queue
      .consume(
        () =>
          kind === "bullmq"
            ? Effect.void
            : Effect.flatMap(
                Ref.updateAndGet(done, (n) => n + 1),
                (n) => (n === jobs ? Deferred.succeed(all, undefined) : Effect.void)
              ),
        { concurrency }
      )
      .pipe(Scope.extend(consumer))
    if (kind === "bullmq") {
      const probe = new Queue("jobs", { connection: { url: redisUrl }, prefix })
      yield* Effect.promise(() => allCompleted(probe).finally(() => probe.close()))
    } else {
      yield* Deferred.await(all)
    }
    const processMs = performance.now() - processStart
    yield* Scope.close(consumer, Exit.void)
    return { enqueueMs, processMs }
  })
  return Effect.runPromise(
    Effect.scoped(program).pipe(
      Effect.ensuring(Effect.promise(() => dropKeys(prefix))),
      Logger.withMinimumLogLevel(LogLevel.Warning)
    )
  )
}

interface Row {
  readonly path: string
  readonly concurrency: number
  readonly enqueuePerSecond: number
  readonly processPerSecond: number
  readonly vsRaw: number | undefined
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN
}
const perSecond = (ms: number) => jobs / (ms / 1000)

const rows: Array<Row> = []
for (const concurrency of [1, 50]) {
  const raw: Array<Sample> = []
  const layer: Array<Sample> = []
  const memory: Array<Sample> = []
  // Warm-up of every path (JIT, Lua scripts), not counted.
  await rawBullmq(concurrency)
  await viaLayer("bullmq", concurrency)
  await viaLayer("in-process", concurrency)
  for (let round = 0; round < rounds; round++) {
    raw.push(await rawBullmq(concurrency))
    layer.push(await viaLayer("bullmq", concurrency))
    memory.push(await viaLayer("in-process", concurrency))
  }
  const rawProcess = perSecond(median(raw.map((s) => s.processMs)))
  const rawEnqueue = perSecond(median(raw.map((s) => s.enqueueMs)))
  rows.push({ path: "raw BullMQ", concurrency, enqueuePerSecond: rawEnqueue, processPerSecond: rawProcess, vsRaw: 1 })
  const layerProcess = perSecond(median(layer.map((s) => s.processMs)))
  rows.push({
    path: "JobQueue.bullmq",
    concurrency,
    enqueuePerSecond: perSecond(median(layer.map((s) => s.enqueueMs))),
    processPerSecond: layerProcess,
    vsRaw: layerProcess / rawProcess
  })
  rows.push({
    path: "JobQueue.inProcess",
    concurrency,
    enqueuePerSecond: perSecond(median(memory.map((s) => s.enqueueMs))),
    processPerSecond: perSecond(median(memory.map((s) => s.processMs))),
    vsRaw: undefined
  })
}
await admin.quit()

console.log(`${jobs} no-op jobs, median of ${rounds} rounds (enqueue: ${enqueueParallel} in flight)\n`)
console.log("| path               | concurrency | enqueue jobs/s | process jobs/s | process vs raw |")
console.log("| ------------------ | ----------: | -------------: | -------------: | -------------: |")
for (const row of rows) {
  console.log(
    `| ${row.path.padEnd(18)} | ${String(row.concurrency).padStart(11)} | ${row.enqueuePerSecond.toFixed(0).padStart(14)} | ${row.processPerSecond.toFixed(0).padStart(14)} | ${(row.vsRaw === undefined ? "n/a" : `${row.vsRaw.toFixed(2)}×`).padStart(14)} |`
  )
}
mkdirSync("bench/results", { recursive: true })
writeFileSync(
  "bench/results/queue.json",
  JSON.stringify({ node: process.version, jobs, rounds, at: new Date().toISOString(), rows }, null, 2)
)
