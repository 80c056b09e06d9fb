/**
 * The embedded job queue: the same contract as the BullMQ layer, in memory, for `npm run dev`
 * and unit tests. Ready jobs flow through an Effect `Queue`; retries wait on Effect's `Clock`
 * (so `TestClock` drives them); finished jobs are kept for the configured time so their ids stay
 * taken. Jobs live as long as the process: nothing survives a restart, and only consumers in the
 * same process see them.
 */
import {
  Clock,
  Deferred,
  Duration,
  Effect,
  Fiber,
  FiberSet,
  Option,
  Queue,
  Random,
  type Schema,
  type Scope
} from "effect"
import {
  checkJobId,
  jobEncoder,
  makeStopSignal,
  type Outcome,
  requestStop,
  runAttempt,
  type StopSignal
} from "./attempt.ts"
import { currentTraceparent } from "../tracing.ts"
import {
  backoffDelay,
  type ConsumeOptions,
  type EnqueueResult,
  envelopeOf,
  type Job,
  type JobCounts,
  type JobQueueOptions,
  type JobQueueShape,
  type JobState,
  type RemoveResult,
  resolveOptions
} from "./model.ts"

export interface InProcessJobQueueOptions extends JobQueueOptions {
  /** Shown in logs and spans (default `jobs`). */
  readonly queueName?: string
  /** At most this many completed, and this many failed, jobs are kept whatever their age (default 10000). */
  readonly keepMaxFinished?: number
}

interface Entry {
  readonly id: string
  /** The stored envelope as JSON, parsed again for each attempt (as BullMQ does). */
  readonly data: string
  readonly maxAttempts: number
  state: JobState
  attemptsMade: number
  /** Set while active: how to interrupt the attempt. */
  stop: StopSignal | undefined
  /** Set while active: completed when the attempt has ended and the job's state is settled. */
  ended: Deferred.Deferred<void> | undefined
  /** `remove` was called while the job was active: delete it when the attempt ends. */
  removeWhenDone: boolean
  /** When it was enqueued (ms): its wait before the first attempt is a metric. */
  readonly enqueuedAt: number
}

/** Finished jobs of one kind in the order they finished: the oldest expire first. */
interface Kept {
  readonly state: "completed" | "failed"
  readonly keepMs: number
  readonly entries: Array<{ readonly entry: Entry; readonly at: number }>
}

export const makeInProcessJobQueue = <A, I>(
  schema: Schema.Schema<A, I>,
  options: InProcessJobQueueOptions = {}
): Effect.Effect<JobQueueShape<A>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const name = options.queueName ?? "jobs"
    const settings = resolveOptions(options)
    const keepMaxFinished = options.keepMaxFinished ?? 10_000
    const envelope = envelopeOf(schema)
    const encodeJob = jobEncoder(name, schema)
    const jobs = new Map<string, Entry>()
    const completed: Kept = { state: "completed", keepMs: settings.keepCompletedSeconds * 1000, entries: [] }
    const failed: Kept = { state: "failed", keepMs: settings.keepFailedSeconds * 1000, entries: [] }
    const ready = yield* Effect.acquireRelease(Queue.unbounded<string>(), Queue.shutdown)
    /** Backoff timers of delayed jobs: they belong to the queue, not to a consumer. */
    const timers = yield* FiberSet.make()

    const purge = (kept: Kept, now: number) => {
      for (let oldest = kept.entries[0]; oldest !== undefined; oldest = kept.entries[0]) {
        const current = jobs.get(oldest.entry.id) === oldest.entry && oldest.entry.state === kept.state
        if (current && kept.entries.length <= keepMaxFinished && now - oldest.at < kept.keepMs) return
        if (current) jobs.delete(oldest.entry.id)
        kept.entries.shift()
      }
    }
    const purgeAll = Effect.map(Clock.currentTimeMillis, (now) => {
      purge(completed, now)
      purge(failed, now)
    })

    const finish = (entry: Entry, kept: Kept) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        entry.state = kept.state
        kept.entries.push({ entry, at: now })
        purge(kept, now)
      })

    const makeReady = (entry: Entry) =>
      Effect.suspend(() => {
        entry.state = "waiting"
        return Queue.offer(ready, entry.id)
      })

    const enqueue = (jobId: string, payload: A) =>
      Effect.gen(function* () {
        const encoded = yield* encodeJob(jobId, payload)
        yield* purgeAll
        if (jobs.has(jobId)) {
          yield* Effect.logDebug("Job already exists: enqueue ignored")
          return "duplicate" satisfies EnqueueResult
        }
        const entry: Entry = {
          id: jobId,
          data: JSON.stringify({ trace: yield* currentTraceparent, payload: encoded }),
          maxAttempts: settings.attempts,
          state: "waiting",
          attemptsMade: 0,
          stop: undefined,
          ended: undefined,
          removeWhenDone: false,
          enqueuedAt: yield* Clock.currentTimeMillis
        }
        jobs.set(jobId, entry)
        yield* Queue.offer(ready, jobId)
        yield* Effect.logDebug("Job enqueued")
        return "enqueued" satisfies EnqueueResult
      }).pipe(
        Effect.annotateLogs({ queue: name, jobId }),
        Effect.withSpan("queue.enqueue", {
          kind: "producer",
          captureStackTrace: false,
          attributes: { "queue.name": name, "job.id": jobId }
        })
      )

    const remove = (jobId: string) =>
      Effect.gen(function* () {
        yield* checkJobId(name, jobId)
        yield* purgeAll
        const entry = jobs.get(jobId)
        if (entry === undefined) return "not-found" satisfies RemoveResult
        if (entry.state === "active") {
          entry.removeWhenDone = true
          if (entry.stop !== undefined) requestStop(entry.stop, "cancel")
          yield* Effect.logInfo("Job cancel requested: its attempt is being interrupted")
          const ended =
            entry.ended === undefined
              ? Option.some(undefined)
              : yield* Deferred.await(entry.ended).pipe(Effect.timeoutOption(Duration.millis(settings.removeWaitMs)))
          if (Option.isSome(ended)) yield* Effect.logInfo("Job removed after its attempt was interrupted")
          return (Option.isSome(ended) ? "removed" : "cancelling") satisfies RemoveResult
        }
        // A waiting id stays in the ready queue and a delayed one keeps its timer: both find the
        // entry gone and do nothing.
        jobs.delete(jobId)
        yield* Effect.logInfo("Job removed")
        return "removed" satisfies RemoveResult
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
        Effect.zipRight(
          purgeAll,
          Effect.sync(() => Option.map(Option.fromNullable(jobs.get(jobId)), (entry) => entry.state))
        )
      )

    const consume = <E, R>(handler: (job: Job<A>) => Effect.Effect<void, E, R>, consumeOptions: ConsumeOptions = {}) =>
      Effect.gen(function* () {
        const concurrency = Math.max(1, consumeOptions.concurrency ?? settings.concurrency)
        const running = new Set<Entry>()
        const inFlight = yield* FiberSet.make()
        const takers = yield* FiberSet.make()

        const settle = (entry: Entry, outcome: Outcome) =>
          Effect.gen(function* () {
            entry.stop = undefined
            entry.ended = undefined
            if (jobs.get(entry.id) !== entry) return
            if (entry.removeWhenDone) {
              jobs.delete(entry.id)
              return
            }
            switch (outcome._tag) {
              case "Completed":
                entry.attemptsMade += 1
                return yield* finish(entry, completed)
              case "Failed": {
                entry.attemptsMade += 1
                if (!outcome.retry) return yield* finish(entry, failed)
                entry.state = "delayed"
                const delay = backoffDelay(settings, entry.attemptsMade, yield* Random.next)
                yield* FiberSet.run(
                  timers,
                  Effect.sleep(Duration.millis(delay)).pipe(
                    Effect.zipRight(
                      Effect.suspend(() =>
                        jobs.get(entry.id) === entry && entry.state === "delayed" ? makeReady(entry) : Effect.void
                      )
                    )
                  )
                )
                return
              }
              case "Stopped":
                // "cancel" always comes with removeWhenDone; a shutdown or a lost lock hands it back.
                return yield* makeReady(entry)
            }
          })

        const runJob = (entry: Entry, stop: StopSignal, ended: Deferred.Deferred<void>) =>
          runAttempt({
            queue: name,
            envelope,
            jobId: entry.id,
            data: JSON.parse(entry.data),
            attempt: entry.attemptsMade + 1,
            maxAttempts: entry.maxAttempts,
            enqueuedAt: entry.enqueuedAt,
            handler,
            stop,
            options: settings
          }).pipe(
            Effect.flatMap((outcome) => settle(entry, outcome)),
            Effect.ensuring(Effect.sync(() => running.delete(entry))),
            Effect.ensuring(Deferred.succeed(ended, undefined))
          )

        // Taking a job and starting it cannot be split by an interruption: a taken id is always run.
        const taker = Effect.uninterruptibleMask((restore) =>
          Effect.gen(function* () {
            const id = yield* restore(Queue.take(ready))
            const entry = jobs.get(id)
            if (entry === undefined || entry.state !== "waiting") return
            const stop = makeStopSignal()
            const ended = yield* Deferred.make<void>()
            entry.state = "active"
            entry.stop = stop
            entry.ended = ended
            running.add(entry)
            // Forked from an uninterruptible region: the attempt itself must be interruptible again.
            const fiber = yield* FiberSet.run(inFlight, Effect.interruptible(runJob(entry, stop, ended)))
            yield* restore(Fiber.await(fiber))
          })
        ).pipe(Effect.forever)

        // Registered after the fiber sets, so it runs before they are closed.
        yield* Effect.addFinalizer(() =>
          Effect.gen(function* () {
            yield* FiberSet.clear(takers)
            // Finalizers are uninterruptible: the wait must be made interruptible for the timeout to cut it.
            const drained = yield* Effect.interruptible(FiberSet.awaitEmpty(inFlight)).pipe(
              Effect.timeoutOption(Duration.millis(settings.shutdownGraceMs))
            )
            if (Option.isNone(drained)) {
              yield* Effect.logInfo(`Consumer stopping: handing back ${running.size} running job(s)`)
              for (const entry of running) if (entry.stop !== undefined) requestStop(entry.stop, "shutdown")
              yield* FiberSet.awaitEmpty(inFlight)
            }
            yield* Effect.logInfo("Consumer stopped")
          }).pipe(Effect.annotateLogs("queue", name))
        )
        for (let i = 0; i < concurrency; i++) yield* FiberSet.run(takers, taker)
        yield* Effect.logInfo("Consumer started (in-process queue)").pipe(
          Effect.annotateLogs({ queue: name, concurrency })
        )
      })

    const counts = Effect.sync((): JobCounts => {
      const byState = { waiting: 0, active: 0, delayed: 0, failed: 0 }
      for (const entry of jobs.values()) {
        if (entry.state !== "completed") byState[entry.state]++
      }
      return byState
    })

    return {
      name,
      backend: "in-process",
      enqueue,
      remove,
      state,
      counts,
      bullmq: Option.none(),
      consume
    } satisfies JobQueueShape<A>
  })
