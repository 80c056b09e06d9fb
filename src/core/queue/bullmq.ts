/**
 * The job queue on Redis through BullMQ: a `Queue` to enqueue, remove and read states, and per
 * `consume` a `Worker` whose processor runs each job's attempt as an Effect fiber.
 *
 * - Ids: the BullMQ job id is ours. A duplicate is told apart atomically: each enqueue stores a
 *   random token in the job data and reads back whose token the stored job holds (the claim
 *   script, which also drops a stale cancel mark of an earlier job with the id). An enqueue with
 *   `fresh` (an id just minted) skips the claim: nothing can need it.
 * - Retries: BullMQ's attempts and exponential backoff; `JobFailedPermanently`, an undecodable
 *   payload and a cancel throw BullMQ's `UnrecoverableError` (failed at once).
 * - Cancel of an active job: BullMQ 6's `Worker.cancelJob` only reaches the process that runs the
 *   job, so `remove` writes a cancel mark (`<prefix>:<queue>:~cancel:<id>`, which no job key can
 *   be: ids have no `~`) and publishes the id on `<prefix>:<queue>:~cancel`. The consumer running
 *   the job interrupts its fiber (the attempt fails as `Cancelled`, never retried); `remove` waits
 *   up to `removeWaitMs` for that and deletes the job. If the attempt outlasts the wait, the
 *   consumer deletes the job when it ends; a consumer that takes a marked job again (after a
 *   stall) does not run it. No Redis call is added per job for this: only retried or recovered
 *   jobs read the mark.
 * - Shutdown: the worker is closed (no new jobs), running attempts get `shutdownGraceMs`, then
 *   they are interrupted and moved back to waiting at the head of the queue (`moveToWait`: the
 *   attempt is not counted, no stall). A worker that dies (kill -9) stops renewing its locks: after
 *   `lockDurationMs`, another worker's stalled check (every `stalledIntervalMs`) puts its jobs
 *   back to waiting; a job that stalls more than `maxStalledCount` times is failed. A worker whose
 *   lock is lost because Redis lost the job (restarted empty) adds the job again (the soak found it).
 */
import { Queue, UnrecoverableError, WaitingError, Worker, type Job as BullJob } from "bullmq"
import { Redis as IORedis } from "ioredis"
import { createHash, randomUUID } from "node:crypto"
import type { EventEmitter } from "node:events"
import { Duration, Effect, Fiber, FiberSet, Option, Redacted, Runtime, Schedule, type Schema, type Scope } from "effect"
import {
  checkJobId,
  jobEncoder,
  makeStopSignal,
  requestStop,
  runAttempt,
  type StopReason,
  type StopSignal
} from "./attempt.ts"
import { currentTraceparent } from "../tracing.ts"
import {
  type ConsumeOptions,
  type EnqueueOptions,
  type EnqueueResult,
  envelopeOf,
  type Job,
  type JobCounts,
  type JobQueueOptions,
  type JobQueueShape,
  type JobState,
  JobQueueUnavailable,
  type RemoveResult,
  resolveOptions
} from "./model.ts"

export interface BullMqJobQueueOptions extends JobQueueOptions {
  /**
   * A Redis URL (the layer opens and closes its connections), or an ioredis client: used as is
   * to enqueue (it stays yours), duplicated for the worker and the cancel subscription.
   */
  readonly connection: { readonly url: string | Redacted.Redacted<string> } | IORedis
  /** The BullMQ queue name, e.g. `sessions`. */
  readonly queueName: string
  /** Key prefix of every key of the queue (default `wingmate`). */
  readonly prefix?: string
  /** How long a worker's lock on a job lasts without renewal (renewed every half); default 30000 ms. */
  readonly lockDurationMs?: number
  /** How often a worker looks for jobs whose lock expired; default 30000 ms. */
  readonly stalledIntervalMs?: number
  /** Stalls a job survives before it is failed; default 1. */
  readonly maxStalledCount?: number
  /** Bound on each Redis operation (enqueue, remove, state) and on a consumer's start; default 5000 ms. */
  readonly operationTimeoutMs?: number
}

/** BullMQ job name: one kind of job per queue. */
const JOB_NAME = "job"
/** A cancel mark outlives any attempt that may still see it (active, or stalled and taken again). */
const CANCEL_MARK_TTL_SECONDS = 3_600

/**
 * After `queue.add`: 1 when the stored job carries this enqueue's token (a new job; a stale
 * cancel mark of an earlier job with the same id is dropped), 0 when another enqueue created it.
 * A job already gone again (processed and removed) counts as new.
 */
const CLAIM_SCRIPT = `
local data = redis.call('HGET', KEYS[1], 'data')
if not data then return 1 end
local ok, decoded = pcall(cjson.decode, data)
if ok and type(decoded) == 'table' and decoded['token'] == ARGV[1] then
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
`

const CLAIM_SHA = createHash("sha1").update(CLAIM_SCRIPT).digest("hex")

/** Runs the claim script by its SHA (cached by Redis), sending its text only the first time. */
const claim = async (client: IORedis, jobKey: string, markKey: string, token: string): Promise<unknown> => {
  try {
    return await client.evalsha(CLAIM_SHA, 2, jobKey, markKey, token)
  } catch (error) {
    if (error instanceof Error && error.message.startsWith("NOSCRIPT")) {
      return client.eval(CLAIM_SCRIPT, 2, jobKey, markKey, token)
    }
    throw error
  }
}

/** What the processor tells BullMQ about an attempt. */
type Verdict =
  | { readonly _tag: "Complete" }
  | { readonly _tag: "Fail"; readonly permanent: boolean; readonly reason: string }
  /** Already moved back to waiting (shutdown), or no longer ours (lock lost): BullMQ must not touch it. */
  | { readonly _tag: "Release" }

const urlOf = (url: string | Redacted.Redacted<string>): string =>
  Redacted.isRedacted(url) ? Redacted.value(url) : url

/** A set that forgets its oldest entries beyond `limit`. */
const boundedSet = (limit: number) => {
  const items = new Set<string>()
  return {
    has: (item: string) => items.has(item),
    delete: (item: string) => items.delete(item),
    add: (item: string) => {
      items.delete(item)
      items.add(item)
      const oldest = items.values().next()
      if (items.size > limit && oldest.done !== true) items.delete(oldest.value)
    }
  }
}

/** `promise`, or a rejection once `ms` have passed without an answer. */
const withinMs = <X>(promise: Promise<X>, ms: number): Promise<X> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`No answer within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

const bullStates: Record<string, JobState | undefined> = {
  waiting: "waiting",
  prioritized: "waiting",
  "waiting-children": "waiting",
  delayed: "delayed",
  active: "active",
  completed: "completed",
  failed: "failed"
}

export const makeBullMqJobQueue = <A, I>(
  schema: Schema.Schema<A, I>,
  options: BullMqJobQueueOptions
): Effect.Effect<JobQueueShape<A>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const name = options.queueName
    const prefix = options.prefix ?? "wingmate"
    const settings = resolveOptions(options)
    const lockDuration = options.lockDurationMs ?? 30_000
    const stalledInterval = options.stalledIntervalMs ?? 30_000
    const maxStalledCount = options.maxStalledCount ?? 1
    const operationTimeoutMs = options.operationTimeoutMs ?? 5_000
    const operationTimeout = Duration.millis(operationTimeoutMs)
    const removeWait = Duration.millis(settings.removeWaitMs)
    const envelope = envelopeOf(schema)
    const encodeJob = jobEncoder(name, schema)
    const runtime = yield* Effect.runtime<never>()
    const runLog = (effect: Effect.Effect<void>) =>
      void Runtime.runFork(runtime)(effect.pipe(Effect.annotateLogs("queue", name)))

    /** Logs the first error after each (re)connection, not every retry while Redis is down. */
    const reportErrors = (emitter: EventEmitter, what: string) => {
      let quiet = false
      emitter.on("ready", () => (quiet = false))
      emitter.on("error", (error: unknown) => {
        if (quiet) return
        quiet = true
        runLog(Effect.logWarning(`Job queue ${what}: Redis error`, error))
      })
    }

    const connect = (role: string, blocking: boolean): IORedis => {
      const redisOptions = {
        // BullMQ requires null on connections that block; elsewhere fail fast while Redis is down.
        maxRetriesPerRequest: blocking ? null : 2,
        connectionName: `${prefix}:${name}:${role}`
      }
      const client =
        options.connection instanceof IORedis
          ? options.connection.duplicate(redisOptions)
          : new IORedis(urlOf(options.connection.url), redisOptions)
      reportErrors(client, role)
      return client
    }
    const disconnect = (client: IORedis) =>
      Effect.interruptible(Effect.promise(() => client.quit().catch(() => undefined))).pipe(
        Effect.timeoutOption(Duration.seconds(2)),
        Effect.zipRight(Effect.sync(() => client.disconnect()))
      )
    const connection = (role: string, blocking: boolean) =>
      Effect.acquireRelease(
        Effect.sync(() => connect(role, blocking)),
        (client) => disconnect(client)
      )

    const producer = options.connection instanceof IORedis ? options.connection : yield* connection("producer", false)
    const queue = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const queue = new Queue(name, { connection: producer, prefix })
        reportErrors(queue, "queue")
        return queue
      }),
      (queue) => Effect.promise(() => queue.close().catch(() => undefined))
    )

    const jobKey = (jobId: string) => queue.toKey(jobId)
    const markKey = (jobId: string) => `${prefix}:${name}:~cancel:${jobId}`
    const cancelChannel = `${prefix}:${name}:~cancel`

    // The bound is a plain timer around the promise: an Effect timeout (a sleeping fiber raced
    // per call) costs more than the Redis round trip it guards.
    const redis = <X>(operation: string, run: () => Promise<X>) =>
      Effect.tryPromise({
        try: () => withinMs(run(), operationTimeoutMs),
        catch: (cause) => new JobQueueUnavailable({ queue: name, operation, cause })
      })

    const keep = (seconds: number) => (seconds <= 0 ? true : { age: seconds })
    const jobOptions = (jobId: string) => ({
      jobId,
      attempts: settings.attempts,
      backoff: { type: "exponential", delay: settings.backoffMs, jitter: settings.backoffJitter },
      removeOnComplete: keep(settings.keepCompletedSeconds),
      removeOnFail: keep(settings.keepFailedSeconds)
    })

    const enqueue = (jobId: string, payload: A, enqueueOptions: EnqueueOptions = {}) =>
      Effect.gen(function* () {
        const encoded = yield* encodeJob(jobId, payload)
        const token = randomUUID()
        const trace = yield* currentTraceparent
        const claimed = yield* redis("enqueue", async () => {
          await queue.add(JOB_NAME, { token, trace, payload: encoded }, jobOptions(jobId))
          // A fresh id has no earlier job to tell apart nor stale cancel mark to drop: BullMQ's
          // own dedupe by id is enough, the claim would be one more round trip for nothing.
          return enqueueOptions.fresh === true ? 1 : claim(producer, jobKey(jobId), markKey(jobId), token)
        })
        const result: EnqueueResult = claimed === 1 ? "enqueued" : "duplicate"
        yield* Effect.logDebug(result === "enqueued" ? "Job enqueued" : "Job already exists: enqueue ignored")
        return result
      }).pipe(
        Effect.annotateLogs({ queue: name, jobId }),
        Effect.withSpan("queue.enqueue", {
          kind: "producer",
          captureStackTrace: false,
          attributes: { "queue.name": name, "job.id": jobId }
        })
      )

    /** Deletes a job that is not locked; false while a worker holds it. */
    const deleteUnlocked = (jobId: string) =>
      redis("remove", async () => {
        if ((await queue.remove(jobId)) !== 1) return false
        await producer.del(markKey(jobId))
        return true
      })

    const remove = (jobId: string) =>
      Effect.gen(function* () {
        yield* checkJobId(name, jobId)
        if ((yield* redis("remove", () => producer.exists(jobKey(jobId)))) === 0) {
          yield* Effect.logInfo("Job to remove not found")
          return "not-found" satisfies RemoveResult
        }
        if (yield* deleteUnlocked(jobId)) {
          yield* Effect.logInfo("Job removed")
          return "removed" satisfies RemoveResult
        }
        // Active: mark it (a worker that takes it again later sees the mark) and tell its consumer.
        yield* redis("remove", () =>
          producer.multi().set(markKey(jobId), "1", "EX", CANCEL_MARK_TTL_SECONDS).publish(cancelChannel, jobId).exec()
        )
        yield* Effect.logInfo("Job cancel requested: its attempt is being interrupted")
        // The interrupted attempt usually ends within milliseconds: then the job is deleted here.
        const deleted = yield* deleteUnlocked(jobId).pipe(
          Effect.repeat(
            Schedule.recurWhile((done: boolean) => !done).pipe(Schedule.addDelay(() => Duration.millis(25)))
          ),
          Effect.timeoutOption(removeWait),
          Effect.map(Option.getOrElse(() => false))
        )
        if (deleted) yield* Effect.logInfo("Job removed after its attempt was interrupted")
        return (deleted ? "removed" : "cancelling") satisfies RemoveResult
      }).pipe(
        Effect.annotateLogs({ queue: name, jobId }),
        Effect.withSpan("queue.remove", {
          captureStackTrace: false,
          attributes: { "queue.name": name, "job.id": jobId }
        })
      )

    const state = (jobId: string) =>
      Effect.zipRight(
        checkJobId(name, jobId),
        Effect.map(
          redis("state", () => queue.getJobState(jobId)),
          (state) => Option.fromNullable(bullStates[state])
        )
      )

    const consume = <E, R>(handler: (job: Job<A>) => Effect.Effect<void, E, R>, consumeOptions: ConsumeOptions = {}) =>
      Effect.gen(function* () {
        const concurrency = Math.max(1, consumeOptions.concurrency ?? settings.concurrency)
        const workerConnection = yield* connection("worker", true)
        const subscriber = yield* connection("subscriber", false)
        const inFlight = yield* FiberSet.make<Verdict>()
        const background = yield* FiberSet.make()
        const runJob = yield* FiberSet.runtimePromise(inFlight)<R>()
        const runBackground = yield* FiberSet.runtime(background)<never>()
        const running = new Map<string, StopSignal>()
        /** Ids whose cancel this consumer heard of, and ids whose attempt ended here: no Redis call per job. */
        const cancelRequested = boundedSet(4_096)
        const recentlyEnded = boundedSet(4_096)
        let stopping = false

        const stop = (jobId: string, reason: StopReason) => {
          const signal = running.get(jobId)
          if (signal !== undefined) requestStop(signal, reason)
        }

        const handBack = (job: BullJob, token: string | undefined) =>
          Effect.tryPromise(() => job.moveToWait(token)).pipe(
            Effect.catchAll((cause) =>
              Effect.logWarning("Job could not be handed back: it will be recovered as stalled", cause)
            ),
            Effect.as<Verdict>({ _tag: "Release" })
          )

        /**
         * After a lost lock: a job still in Redis is another worker's to take (its stalled check
         * finds it). A job gone from Redis (restarted empty, or failed over without it) would be found
         * by nobody: it is added again with its data, and its next attempt resumes it as after a stall.
         * While Redis does not answer, asked again every second for up to a minute.
         */
        const requeueIfGone = (job: BullJob, jobId: string): Effect.Effect<Verdict> =>
          redis("requeue", () => producer.exists(jobKey(jobId))).pipe(
            Effect.retry({ schedule: Schedule.spaced(Duration.seconds(1)), times: 60 }),
            Effect.flatMap((exists) =>
              exists === 1 || cancelRequested.has(jobId)
                ? Effect.void
                : redis("requeue", () => queue.add(JOB_NAME, job.data, jobOptions(jobId))).pipe(
                    Effect.zipRight(Effect.logWarning("Job gone from Redis after its lock was lost: enqueued again"))
                  )
            ),
            Effect.catchAll((error) =>
              Effect.logError("Job lock lost and Redis not answering: job not re-enqueued", error)
            ),
            Effect.annotateLogs({ queue: name, jobId }),
            Effect.as<Verdict>({ _tag: "Release" })
          )

        const attemptJob = (
          job: BullJob,
          token: string | undefined,
          jobId: string,
          signal: StopSignal
        ): Effect.Effect<Verdict, never, R> =>
          Effect.gen(function* () {
            // A cancel heard before the attempt was registered, or, for a job started before (a retry,
            // a stall, a hand-back), a mark written while no consumer of this process ran it.
            const marked =
              cancelRequested.has(jobId) ||
              (job.attemptsStarted > 1 &&
                (yield* Effect.tryPromise(() => producer.exists(markKey(jobId))).pipe(
                  Effect.orElseSucceed(() => 0)
                )) === 1)
            if (marked) {
              cancelRequested.add(jobId)
              yield* Effect.logInfo("Job cancelled before its attempt started").pipe(
                Effect.annotateLogs({ queue: name, jobId })
              )
              return { _tag: "Fail", permanent: true, reason: "Cancelled" } satisfies Verdict
            }
            const outcome = yield* runAttempt({
              queue: name,
              envelope,
              jobId,
              data: job.data,
              attempt: job.attemptsMade + 1,
              maxAttempts: job.opts.attempts ?? 1,
              enqueuedAt: job.timestamp,
              handler,
              stop: signal,
              options: settings
            })
            switch (outcome._tag) {
              case "Completed":
                return { _tag: "Complete" } satisfies Verdict
              case "Failed":
                return { _tag: "Fail", permanent: !outcome.retry, reason: outcome.reason } satisfies Verdict
              case "Stopped":
                return outcome.reason === "cancel"
                  ? ({ _tag: "Fail", permanent: true, reason: "Cancelled" } satisfies Verdict)
                  : outcome.reason === "shutdown"
                    ? yield* handBack(job, token)
                    : yield* requeueIfGone(job, jobId)
            }
          })

        const processJob = (job: BullJob, token: string | undefined): Effect.Effect<Verdict, never, R> =>
          Effect.gen(function* () {
            const jobId = job.id ?? ""
            // Fetched while the worker was closing: not started, back to the head of the queue.
            if (stopping) return yield* handBack(job, token)
            const signal = makeStopSignal()
            // Registered before the cancel mark is read: a cancel published after the read finds it.
            running.set(jobId, signal)
            return yield* attemptJob(job, token, jobId, signal).pipe(
              Effect.ensuring(
                Effect.sync(() => {
                  if (running.get(jobId) === signal) running.delete(jobId)
                  recentlyEnded.add(jobId)
                })
              )
            )
          })

        const processor = async (job: BullJob, token?: string): Promise<void> => {
          const verdict = await runJob(processJob(job, token))
          switch (verdict._tag) {
            case "Complete":
              return
            case "Fail":
              throw verdict.permanent ? new UnrecoverableError(verdict.reason) : new Error(verdict.reason)
            case "Release":
              throw new WaitingError()
          }
        }

        /**
         * A job removed while active, once its attempt has ended: delete it and its mark. Runs when
         * BullMQ has finished the job, or when the cancel arrives after the attempt ended here.
         */
        const deleteCancelled = (jobId: string) =>
          deleteUnlocked(jobId).pipe(
            Effect.tap((deleted) => Effect.sync(() => void (deleted && cancelRequested.delete(jobId)))),
            Effect.catchAll((error) => Effect.logWarning("Cancelled job could not be deleted", error)),
            Effect.annotateLogs({ queue: name, jobId })
          )

        subscriber.on("message", (_channel: string, jobId: string) => {
          cancelRequested.add(jobId)
          if (running.has(jobId)) stop(jobId, "cancel")
          else if (recentlyEnded.has(jobId)) runBackground(deleteCancelled(jobId))
        })
        yield* redis("consume", () => subscriber.subscribe(cancelChannel))

        const worker = yield* Effect.acquireRelease(
          Effect.sync(
            () =>
              new Worker(name, processor, {
                connection: workerConnection,
                prefix,
                concurrency,
                lockDuration,
                stalledInterval,
                maxStalledCount,
                autorun: false
              })
          ),
          (worker) =>
            Effect.gen(function* () {
              stopping = true
              const closing = yield* Effect.fork(
                Effect.promise(() =>
                  worker.close().catch((error: unknown) => runLog(Effect.logWarning("Worker close failed", error)))
                )
              )
              // Finalizers are uninterruptible: waits are made interruptible for their timeouts to cut them.
              const drained = yield* Effect.interruptible(FiberSet.awaitEmpty(inFlight)).pipe(
                Effect.timeoutOption(Duration.millis(settings.shutdownGraceMs))
              )
              if (Option.isNone(drained)) {
                yield* Effect.logInfo(`Consumer stopping: handing back ${running.size} running job(s)`)
                for (const jobId of running.keys()) stop(jobId, "shutdown")
                yield* FiberSet.awaitEmpty(inFlight)
              }
              yield* Effect.interruptible(Fiber.join(closing)).pipe(Effect.timeoutOption(operationTimeout))
              yield* Effect.interruptible(FiberSet.awaitEmpty(background)).pipe(Effect.timeoutOption(operationTimeout))
              yield* Effect.logInfo("Consumer stopped")
            }).pipe(Effect.annotateLogs("queue", name))
        )
        reportErrors(worker, "worker")
        worker.on("lockRenewalFailed", (jobIds: Array<string>) => {
          for (const jobId of jobIds) stop(jobId, "lock-lost")
        })
        worker.on("stalled", (jobId: string) => {
          runBackground(
            Effect.logWarning("Job stalled (its worker stopped renewing the lock): back to waiting").pipe(
              Effect.annotateLogs({ queue: name, jobId })
            )
          )
        })
        const finished = (job: BullJob | undefined) => {
          if (job?.id !== undefined && cancelRequested.has(job.id)) runBackground(deleteCancelled(job.id))
        }
        worker.on("completed", finished)
        worker.on("failed", finished)
        worker.run().catch((error: unknown) => runLog(Effect.logError("Worker stopped on an error", error)))
        yield* redis("consume", () => worker.waitUntilReady())
        yield* Effect.logInfo("Consumer started (BullMQ)").pipe(Effect.annotateLogs({ queue: name, concurrency }))
      })

    const counts = Effect.map(
      redis("counts", () => queue.getJobCounts("waiting", "active", "delayed", "failed")),
      (counts): JobCounts => ({
        waiting: counts["waiting"] ?? 0,
        active: counts["active"] ?? 0,
        delayed: counts["delayed"] ?? 0,
        failed: counts["failed"] ?? 0
      })
    )

    return {
      name,
      backend: "bullmq",
      enqueue,
      remove,
      state,
      counts,
      bullmq: Option.some(queue),
      consume
    } satisfies JobQueueShape<A>
  })
