/**
 * The BullMQ job queue on this machine's Redis through the real client: the shared contract,
 * then what only a shared Redis shows (a worker killed mid-job, jobs written by someone else, a
 * given ioredis client, Redis unreachable). Each queue has its own key prefix, deleted afterwards.
 */
import { describe, expect, it } from "@effect/vitest"
import { Queue as BullQueue } from "bullmq"
import { Redis as IORedis } from "ioredis"
import { type ChildProcess, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import { fileURLToPath } from "node:url"
import { Deferred, Effect, Exit, Option, Scope } from "effect"
import { type BullMqJobQueueOptions, makeBullMqJobQueue } from "../../../src/core/queue/job-queue.ts"
import { captureLogs, contract, eventually, Payload, payload, stateIs } from "../../fixtures/queue-contract.ts"
import { between, ignore, installCounters, mark } from "../../support/statements.ts"

const redisUrl = process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379"
const workerScript = fileURLToPath(new URL("../../fixtures/queue-worker.ts", import.meta.url))

/** An ioredis client closed with the scope. */
const redisClient = Effect.acquireRelease(
  Effect.sync(() => new IORedis(redisUrl)),
  (client) => Effect.promise(() => client.quit())
)

/** A fresh key prefix whose keys are all deleted when the scope closes (after the queue's own finalizers). */
const freshPrefix = Effect.gen(function* () {
  const prefix = `wmtest-${randomUUID()}`
  const client = yield* redisClient
  yield* Effect.addFinalizer(() =>
    Effect.promise(async () => {
      let cursor = "0"
      do {
        const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000)
        if (keys.length > 0) await client.del(...keys)
        cursor = next
      } while (cursor !== "0")
    })
  )
  return { prefix, client }
})

/** The worker child process (test/fixtures/queue-worker.ts) on `prefix`, killed with the scope if still alive. */
const workerProcess = (prefix: string) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      spawn(process.execPath, [workerScript], {
        env: { ...process.env, QUEUE_TEST_REDIS_URL: redisUrl, QUEUE_TEST_PREFIX: prefix },
        stdio: ["ignore", "ignore", "inherit"]
      })
    ),
    (child) => Effect.sync(() => void (child.exitCode === null && child.signalCode === null && child.kill("SIGKILL")))
  )

/** Sends SIGKILL and waits for the exit; answers the signal that ended it. */
const killed = (child: ChildProcess) =>
  Effect.async<NodeJS.Signals | null>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.succeed(child.signalCode))
    child.once("exit", (_code, signal) => resume(Effect.succeed(signal)))
    child.kill("SIGKILL")
  })

const makeQueue = (options: Partial<BullMqJobQueueOptions> = {}) =>
  Effect.gen(function* () {
    const { prefix } = yield* freshPrefix
    return yield* makeBullMqJobQueue(Payload, {
      connection: { url: redisUrl },
      queueName: "jobs",
      prefix,
      ...options
    })
  })

contract({ backend: "bullmq", make: (options) => makeQueue(options) })

describe("BullMQ job queue", () => {
  it.live(
    "a job whose worker is killed (SIGKILL) mid-job is taken over and completed exactly once",
    () => {
      const logs = captureLogs()
      return Effect.gen(function* () {
        const { prefix, client } = yield* freshPrefix
        const options = {
          connection: { url: redisUrl },
          queueName: "jobs",
          prefix,
          lockDurationMs: 1_000,
          stalledIntervalMs: 500
        }
        const queue = yield* makeBullMqJobQueue(Payload, options)
        expect(yield* queue.enqueue("crash", payload(1))).toBe("enqueued")
        const child = yield* workerProcess(prefix)
        const started = (jobId: string) => Effect.promise(() => client.get(`${prefix}:started:${jobId}`))
        yield* eventually(started("crash"), (count) => count === "1", "the child worker to start the job")
        expect(Option.getOrUndefined(yield* queue.state("crash"))).toBe("active")
        expect(yield* killed(child)).toBe("SIGKILL")
        yield* queue.consume((job) =>
          Effect.promise(async () => {
            await client.incr(`${prefix}:started:${job.id}`)
            await client.incr(`${prefix}:completed:${job.id}`)
          })
        )
        yield* stateIs(queue, "crash", "completed")
        expect(yield* Effect.promise(() => client.get(`${prefix}:completed:crash`))).toBe("1")
        expect(yield* started("crash")).toBe("2")
        expect(logs.lines.some((line) => line.includes("Job stalled") && line.includes("crash"))).toBe(true)
      }).pipe(Effect.scoped, Effect.provide(logs.layer))
    },
    30_000
  )

  it.live(
    "a running job whose keys Redis lost (restarted empty) is enqueued again by its worker and completed (soak, #20)",
    () => {
      const logs = captureLogs()
      return Effect.gen(function* () {
        const { prefix, client } = yield* freshPrefix
        const queue = yield* makeBullMqJobQueue(Payload, {
          connection: { url: redisUrl },
          queueName: "jobs",
          prefix,
          lockDurationMs: 1_000,
          stalledIntervalMs: 500
        })
        const firstStarted = yield* Deferred.make<void>()
        const attempts: Array<number> = []
        yield* queue.consume((job) =>
          Effect.gen(function* () {
            attempts.push(job.payload.n)
            if (attempts.length > 1) return
            yield* Deferred.succeed(firstStarted, undefined)
            // The first attempt runs until its lock is lost (it is then interrupted).
            yield* Effect.never
          })
        )
        expect(yield* queue.enqueue("wiped", payload(7))).toBe("enqueued")
        yield* Deferred.await(firstStarted)
        // What a Redis restarted without persistence leaves of this queue: nothing (the job, its lock, the lists).
        yield* Effect.promise(async () => {
          const keys = await client.keys(`${prefix}:*`)
          if (keys.length > 0) await client.del(...keys)
        })
        yield* stateIs(queue, "wiped", "completed")
        expect(attempts).toEqual([7, 7])
        expect(logs.lines.some((line) => line.includes("enqueued again") && line.includes("wiped"))).toBe(true)
      }).pipe(Effect.scoped, Effect.provide(logs.layer))
    },
    // A guard, not a timing: ~0.6 s here, but once over 30 s when two other test suites and a soak
    // shared the two cores (the lock's loss is found by renewals every 500 ms of a starved process).
    120_000
  )

  it.live(
    "a job removed while its worker is dead is cancelled, not run, when another worker takes it over",
    () =>
      Effect.gen(function* () {
        const { prefix, client } = yield* freshPrefix
        const options = {
          connection: { url: redisUrl },
          queueName: "jobs",
          prefix,
          lockDurationMs: 1_000,
          stalledIntervalMs: 500,
          removeWaitMs: 0
        }
        const queue = yield* makeBullMqJobQueue(Payload, options)
        yield* queue.enqueue("orphan", payload(1))
        const child = yield* workerProcess(prefix)
        yield* eventually(
          Effect.promise(() => client.get(`${prefix}:started:orphan`)),
          (count) => count === "1",
          "the child worker to start the job"
        )
        yield* killed(child)
        expect(yield* queue.remove("orphan")).toBe("cancelling")
        const handled = yield* Deferred.make<string>()
        yield* queue.consume((job) => Deferred.succeed(handled, job.id))
        yield* stateIs(queue, "orphan", undefined)
        expect(yield* Deferred.isDone(handled)).toBe(false)
        expect(yield* Effect.promise(() => client.exists(`${prefix}:jobs:~cancel:orphan`))).toBe(0)
      }).pipe(Effect.scoped, Effect.provide(captureLogs().layer)),
    30_000
  )

  it.live("a job written by someone else into the queue is failed at once, not retried", () =>
    Effect.gen(function* () {
      const { prefix, client } = yield* freshPrefix
      const raw = yield* Effect.acquireRelease(
        Effect.sync(() => new BullQueue("jobs", { connection: client, prefix })),
        (queue) => Effect.promise(() => queue.close())
      )
      yield* Effect.promise(() => raw.add("job", { hello: "world" }, { jobId: "foreign", attempts: 5 }))
      const queue = yield* makeBullMqJobQueue(Payload, { connection: { url: redisUrl }, queueName: "jobs", prefix })
      const handled = yield* Deferred.make<string>()
      yield* queue.consume((job) => Deferred.succeed(handled, job.id))
      yield* stateIs(queue, "foreign", "failed")
      const stored = yield* Effect.promise(() => raw.getJob("foreign"))
      expect(stored?.attemptsMade).toBe(1)
      expect(stored?.failedReason).toBe("Payload does not decode")
      expect(yield* Deferred.isDone(handled)).toBe(false)
    }).pipe(Effect.scoped)
  )

  it.live("a given ioredis client is used to enqueue and stays open", () =>
    Effect.gen(function* () {
      const { prefix, client } = yield* freshPrefix
      yield* Effect.scoped(
        Effect.gen(function* () {
          const queue = yield* makeBullMqJobQueue(Payload, { connection: client, queueName: "jobs", prefix })
          const handled = yield* Deferred.make<number>()
          yield* queue.consume((job) => Deferred.succeed(handled, job.payload.n))
          yield* queue.enqueue("shared", payload(9))
          expect(yield* Deferred.await(handled)).toBe(9)
        })
      )
      expect(client.status).toBe("ready")
      expect(yield* Effect.promise(() => client.ping())).toBe("PONG")
    }).pipe(Effect.scoped)
  )

  it.live("a fresh id costs BullMQ's add alone (no claim script); BullMQ still keeps one job per id", () =>
    Effect.gen(function* () {
      const { client } = yield* freshPrefix
      ignore(client)
      installCounters()
      const queue = yield* makeQueue()
      // The first enqueue connects and loads scripts: counted from the second on.
      yield* queue.enqueue("warm", payload(0))
      const before = mark()
      expect(yield* queue.enqueue("minted", payload(1), { fresh: true })).toBe("enqueued")
      expect(between(before).redis).toEqual(["evalsha"])
      // Not a second job: BullMQ's dedupe by id (the answer is not told apart when fresh).
      expect(yield* queue.enqueue("minted", payload(2), { fresh: true })).toBe("enqueued")
      expect(yield* queue.counts).toMatchObject({ waiting: 2 })
      // Without `fresh`, the claim still tells a duplicate apart.
      const claimed = mark()
      expect(yield* queue.enqueue("minted", payload(3))).toBe("duplicate")
      expect(between(claimed).redis).toEqual(["evalsha", "evalsha"])
    }).pipe(Effect.scoped)
  )

  it.live("an unreachable Redis answers JobQueueUnavailable within the operation timeout", () =>
    Effect.gen(function* () {
      const queue = yield* makeBullMqJobQueue(Payload, {
        connection: { url: "redis://127.0.0.1:1" },
        queueName: "jobs",
        operationTimeoutMs: 500
      })
      const refused = yield* Effect.flip(queue.enqueue("nowhere", payload(1)))
      expect(refused._tag).toBe("JobQueueUnavailable")
      const consumer = yield* Scope.make()
      const notStarted = yield* Effect.flip(queue.consume(() => Effect.void).pipe(Scope.extend(consumer)))
      expect(notStarted._tag).toBe("JobQueueUnavailable")
      yield* Scope.close(consumer, Exit.void)
    }).pipe(Effect.scoped, Effect.provide(captureLogs().layer))
  )
})
