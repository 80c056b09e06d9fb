/** The in-process job queue: the shared contract, then what TestClock can pin down exactly. */
import { describe, expect, it } from "@effect/vitest"
import {
  ConfigProvider,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Option,
  Queue,
  Scope,
  TestClock
} from "effect"
import {
  type Job,
  JobQueue,
  makeInProcessJobQueue,
  queueConfig,
  type QueueSettings
} from "../../../../src/core/queue/job-queue.ts"
import { captureLogs, contract, Payload, payload } from "../../../fixtures/queue-contract.ts"

contract({
  backend: "in-process",
  make: (options) => makeInProcessJobQueue(Payload, { ...options, queueName: "test" })
})

/** Lets forked fibers run what they can at the current (test) time. */
const settle = Effect.repeatN(Effect.yieldNow(), 50)

describe("in-process job queue under TestClock", () => {
  it.scoped("retries wait for exponential backoff on the Clock: 1 s, then 2 s", () =>
    Effect.gen(function* () {
      const queue = yield* makeInProcessJobQueue(Payload, { attempts: 3, backoffMs: 1_000 })
      const attempts = yield* Queue.unbounded<number>()
      yield* queue.consume((job) => Effect.zipRight(Queue.offer(attempts, job.attempt), Effect.fail("flaky")))
      yield* queue.enqueue("timed", payload(1))
      expect(yield* Queue.take(attempts)).toBe(1)
      yield* TestClock.adjust(Duration.millis(999))
      yield* settle
      expect(yield* Queue.size(attempts)).toBe(0)
      expect(Option.getOrUndefined(yield* queue.state("timed"))).toBe("delayed")
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* Queue.take(attempts)).toBe(2)
      yield* TestClock.adjust(Duration.millis(1_999))
      yield* settle
      expect(yield* Queue.size(attempts)).toBe(0)
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* Queue.take(attempts)).toBe(3)
      yield* settle
      expect(Option.getOrUndefined(yield* queue.state("timed"))).toBe("failed")
    })
  )

  it.scoped("a removed delayed job is not retried", () =>
    Effect.gen(function* () {
      const queue = yield* makeInProcessJobQueue(Payload, { attempts: 3, backoffMs: 1_000 })
      const attempts = yield* Queue.unbounded<number>()
      yield* queue.consume((job) => Effect.zipRight(Queue.offer(attempts, job.attempt), Effect.fail("flaky")))
      yield* queue.enqueue("later", payload(1))
      yield* Queue.take(attempts)
      yield* settle
      expect(yield* queue.remove("later")).toBe("removed")
      yield* TestClock.adjust(Duration.seconds(10))
      yield* settle
      expect(yield* Queue.size(attempts)).toBe(0)
      expect(Option.isNone(yield* queue.state("later"))).toBe(true)
    })
  )

  it.scoped("the shutdown grace period is measured on the Clock", () =>
    Effect.gen(function* () {
      const queue = yield* makeInProcessJobQueue(Payload, { shutdownGraceMs: 5_000 })
      const started = yield* Deferred.make<void>()
      const consumer = yield* Scope.make()
      yield* queue
        .consume(() => Effect.zipRight(Deferred.succeed(started, undefined), Effect.never))
        .pipe(Scope.extend(consumer))
      yield* queue.enqueue("stuck", payload(1))
      yield* Deferred.await(started)
      const closing = yield* Effect.fork(Scope.close(consumer, Exit.void))
      yield* TestClock.adjust(Duration.millis(4_999))
      yield* settle
      expect(Option.isNone(yield* Fiber.poll(closing))).toBe(true)
      expect(Option.getOrUndefined(yield* queue.state("stuck"))).toBe("active")
      yield* TestClock.adjust(Duration.millis(1))
      yield* Fiber.join(closing)
      expect(Option.getOrUndefined(yield* queue.state("stuck"))).toBe("waiting")
    })
  )

  it.scoped("a finished job keeps its id taken for the configured time, then the id is free", () =>
    Effect.gen(function* () {
      const queue = yield* makeInProcessJobQueue(Payload, {
        attempts: 1,
        keepCompletedSeconds: 60,
        keepFailedSeconds: 120
      })
      const done = yield* Queue.unbounded<string>()
      yield* queue.consume((job) =>
        Effect.zipRight(Queue.offer(done, job.id), job.id === "bad" ? Effect.fail("no") : Effect.void)
      )
      yield* queue.enqueue("good", payload(1))
      yield* queue.enqueue("bad", payload(2))
      yield* Effect.replicateEffect(Queue.take(done), 2)
      yield* settle
      yield* TestClock.adjust(Duration.seconds(59))
      expect(yield* queue.enqueue("good", payload(3))).toBe("duplicate")
      yield* TestClock.adjust(Duration.seconds(1))
      expect(yield* queue.enqueue("good", payload(3))).toBe("enqueued")
      expect(Option.getOrUndefined(yield* queue.state("bad"))).toBe("failed")
      yield* TestClock.adjust(Duration.seconds(60))
      expect(Option.isNone(yield* queue.state("bad"))).toBe(true)
    })
  )
})

class TestJobs extends JobQueue<TestJobs>()("test/TestJobs", { payload: Payload }) {}

const settingsFrom = (env: Record<string, string>) =>
  Effect.runSync(
    Effect.either(Effect.withConfigProvider(queueConfig, ConfigProvider.fromMap(new Map(Object.entries(env)))))
  )
const settings: QueueSettings = Either.getOrThrow(settingsFrom({}))

describe("JobQueue tag", () => {
  it.scoped("a tag per queue, typed by its payload, provided by the in-process layer", () =>
    Effect.gen(function* () {
      const jobs = yield* TestJobs
      expect(jobs.backend).toBe("in-process")
      const seen = yield* Deferred.make<Job<Payload>>()
      yield* jobs.consume((job) => Deferred.succeed(seen, job))
      yield* jobs.enqueue("tagged", payload(4))
      const job = yield* Deferred.await(seen)
      expect(job.payload.n).toBe(4)
    }).pipe(Effect.provide(TestJobs.inProcess({ queueName: "tagged" })))
  )

  it.scoped("fromSettings picks the in-process layer without a Redis URL and says so", () => {
    const logs = captureLogs()
    return Effect.gen(function* () {
      const jobs = yield* TestJobs
      expect(jobs.backend).toBe("in-process")
      expect(jobs.name).toBe("sessions")
      expect(logs.lines.some((line) => line.includes('Job queue "sessions": in-process'))).toBe(true)
    }).pipe(
      Effect.provide(
        TestJobs.fromSettings({ queueName: "sessions", redisUrl: Option.none(), settings }).pipe(
          Layer.provide(logs.layer)
        )
      )
    )
  })

  it("queue settings have defaults and refuse bad values", () => {
    expect(settings).toEqual({
      prefix: "wingmate",
      concurrency: 32,
      attempts: 3,
      backoffMs: 2_000,
      lockDurationMs: 30_000,
      stalledIntervalMs: 30_000,
      maxStalledCount: 1,
      shutdownGraceMs: 8_000,
      keepCompletedSeconds: 3_600,
      keepFailedSeconds: 86_400
    })
    expect(Either.getOrThrow(settingsFrom({ QUEUE_CONCURRENCY: "50", QUEUE_PREFIX: "wm-2" }))).toMatchObject({
      concurrency: 50,
      prefix: "wm-2"
    })
    expect(Either.isLeft(settingsFrom({ QUEUE_CONCURRENCY: "0" }))).toBe(true)
    expect(Either.isLeft(settingsFrom({ QUEUE_PREFIX: "a:b" }))).toBe(true)
  })
})
