/**
 * The job queue's contract, shared by its two implementations (BullMQ on Redis, in-process):
 * what a handler receives, what the operations answer, the errors, the options and their
 * defaults. Payloads are typed by a `Schema`: encoded (and checked to be JSON) on enqueue,
 * decoded on consume. No payload content is ever logged or put in an error.
 */
import type { Queue } from "bullmq"
import { type Effect, type Option, ParseResult, Schema, type Scope } from "effect"

/** What a handler is given for one attempt. Log `id` and `attempt`, never `payload`. */
export interface Job<A> {
  readonly id: string
  readonly payload: A
  /** 1 on the first run; n on the n-th run after n − 1 failed attempts (a hand-back or a stall does not count). */
  readonly attempt: number
  /** The attempts this job has in all, the first included. */
  readonly maxAttempts: number
}

/**
 * A handler fails with this to say that retrying cannot help: the job is failed at once,
 * whatever attempts remain. `reason` is kept with the failed job and logged: no payload content.
 */
export class JobFailedPermanently extends Schema.TaggedError<JobFailedPermanently>()("JobFailedPermanently", {
  reason: Schema.String
}) {}

/** The queue (Redis) could not be reached or answered an error: retry later, or 503. */
export class JobQueueUnavailable extends Schema.TaggedError<JobQueueUnavailable>()("JobQueueUnavailable", {
  queue: Schema.String,
  operation: Schema.String,
  cause: Schema.Defect
}) {}

/** A job id or payload the queue cannot take: a bug in the caller, never retried. */
export class InvalidJob extends Schema.TaggedError<InvalidJob>()("InvalidJob", {
  queue: Schema.String,
  jobId: Schema.String,
  reason: Schema.String
}) {}

/** `duplicate`: a job with this id already exists (waiting, delayed, active, or finished and still kept). */
export type EnqueueResult = "enqueued" | "duplicate"

export interface EnqueueOptions {
  /**
   * The id was minted for this job (a new row's primary key): no earlier job, nor a cancel mark
   * of one, can carry it. The queue's own id dedupe then suffices and a duplicate need not be
   * told apart: BullMQ spends no claim round trip on it.
   */
  readonly fresh?: boolean
}

/**
 * `removed`: the job is gone (it was waiting, delayed or finished; or running, and its interrupted
 * attempt ended within `removeWaitMs`). `cancelling`: it is still running; its handler is being
 * interrupted, it will not be retried, and it is deleted when the attempt ends. `not-found`: there
 * was no such job.
 */
export type RemoveResult = "removed" | "cancelling" | "not-found"

export type JobState = "waiting" | "delayed" | "active" | "completed" | "failed"

/** Jobs per state right now: the queue's depth, for metrics. */
export interface JobCounts {
  readonly waiting: number
  readonly active: number
  readonly delayed: number
  readonly failed: number
}

export interface ConsumeOptions {
  /** Jobs handled at once by this consumer; the queue's `concurrency` by default. */
  readonly concurrency?: number
}

export interface JobQueueShape<A> {
  readonly name: string
  readonly backend: "bullmq" | "in-process"
  /**
   * Idempotent by id: a second enqueue while the job exists changes nothing and answers
   * `duplicate` (with `fresh`, it still changes nothing, but answers `enqueued`).
   */
  readonly enqueue: (
    jobId: string,
    payload: A,
    options?: EnqueueOptions
  ) => Effect.Effect<EnqueueResult, InvalidJob | JobQueueUnavailable>
  /** For cancel and account erasure; see `RemoveResult`. Idempotent. */
  readonly remove: (jobId: string) => Effect.Effect<RemoveResult, InvalidJob | JobQueueUnavailable>
  readonly state: (jobId: string) => Effect.Effect<Option.Option<JobState>, InvalidJob | JobQueueUnavailable>
  /** How many jobs are in each state now (metrics read it when scraped). */
  readonly counts: Effect.Effect<JobCounts, JobQueueUnavailable>
  /** The BullMQ queue itself, for the queue dashboard (read-only there); none in-process. */
  readonly bullmq: Option.Option<Queue>
  /**
   * Runs `handler` on up to `concurrency` jobs at once until the scope closes. Success completes
   * the job; a failure retries it with exponential backoff until its attempts are spent
   * (`JobFailedPermanently`: no retry); `remove` interrupts it. Closing the scope stops taking
   * jobs, lets running ones finish for `shutdownGraceMs`, then interrupts them and hands them
   * back to the queue (waiting again, the attempt not counted). Handlers must be interruptible.
   */
  readonly consume: <E, R>(
    handler: (job: Job<A>) => Effect.Effect<void, E, R>,
    options?: ConsumeOptions
  ) => Effect.Effect<void, JobQueueUnavailable, R | Scope.Scope>
}

export interface JobQueueOptions {
  /** Attempts per job, the first included (default 3). */
  readonly attempts?: number
  /** Backoff before the 2nd attempt; doubled for each further one (default 2000 ms). */
  readonly backoffMs?: number
  /** 0 to 1: each backoff is drawn from [(1 − jitter) × delay, delay] (default 0). */
  readonly backoffJitter?: number
  /** Default concurrency of `consume` (default 16). */
  readonly concurrency?: number
  /** How long closing a consumer waits for running jobs before handing them back (default 8000 ms). */
  readonly shutdownGraceMs?: number
  /** How long a finished job is kept, so that its id stays taken (defaults 3600 s and 86400 s). */
  readonly keepCompletedSeconds?: number
  readonly keepFailedSeconds?: number
  /** How long `remove` of a running job waits for its interrupted attempt to end (default 2000 ms). */
  readonly removeWaitMs?: number
}

export const defaultJobQueueOptions = {
  attempts: 3,
  backoffMs: 2_000,
  backoffJitter: 0,
  concurrency: 16,
  shutdownGraceMs: 8_000,
  keepCompletedSeconds: 3_600,
  keepFailedSeconds: 86_400,
  removeWaitMs: 2_000
} as const satisfies Required<JobQueueOptions>

export type ResolvedJobQueueOptions = { readonly [K in keyof Required<JobQueueOptions>]: number }

export const resolveOptions = (options: JobQueueOptions): ResolvedJobQueueOptions => ({
  attempts: options.attempts ?? defaultJobQueueOptions.attempts,
  backoffMs: options.backoffMs ?? defaultJobQueueOptions.backoffMs,
  backoffJitter: Math.min(1, Math.max(0, options.backoffJitter ?? defaultJobQueueOptions.backoffJitter)),
  concurrency: options.concurrency ?? defaultJobQueueOptions.concurrency,
  shutdownGraceMs: options.shutdownGraceMs ?? defaultJobQueueOptions.shutdownGraceMs,
  keepCompletedSeconds: options.keepCompletedSeconds ?? defaultJobQueueOptions.keepCompletedSeconds,
  keepFailedSeconds: options.keepFailedSeconds ?? defaultJobQueueOptions.keepFailedSeconds,
  removeWaitMs: options.removeWaitMs ?? defaultJobQueueOptions.removeWaitMs
})

/**
 * Job ids: letters, digits, `_`, `-`, `.`, at most 128, not all digits (BullMQ refuses integer
 * custom ids and `:`). Session ids (cuid) and UUIDs fit. The same rule on both backends.
 */
const JOB_ID = /^(?!\d+$)[A-Za-z0-9_.-]{1,128}$/

export const isValidJobId = (jobId: string): boolean => JOB_ID.test(jobId)

/** Where a payload failed to encode or decode, without the values (they may be private). */
export const issuePaths = (error: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error)
    .map((issue) => `${issue.path.length === 0 ? "(root)" : issue.path.map(String).join(".")}: ${issue._tag}`)
    .join("; ")
    .slice(0, 500)

/**
 * How a job is stored: the encoded payload, the token of the enqueue that created it (the
 * BullMQ layer reads it back to tell a new job from a duplicate), and the W3C `traceparent` of
 * the enqueue's span, so that the job's spans join the trace of whatever enqueued it (another
 * process included). `trace` is optional (jobs stored before it existed) and never fails a
 * decode: an unreadable one only starts a new trace.
 */
export const envelopeOf = <A, I>(payload: Schema.Schema<A, I>) =>
  Schema.Struct({ token: Schema.optional(Schema.String), trace: Schema.optional(Schema.Unknown), payload })

/** Exponential backoff after the failed attempt `attempt` (1-based), BullMQ's formula and jitter. */
export const backoffDelay = (options: ResolvedJobQueueOptions, attempt: number, random: number): number => {
  const max = Math.round(2 ** (attempt - 1) * options.backoffMs)
  return options.backoffJitter > 0
    ? Math.floor(random * max * options.backoffJitter + max * (1 - options.backoffJitter))
    : max
}
