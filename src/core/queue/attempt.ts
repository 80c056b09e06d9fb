/**
 * What both backends do around one attempt of a job: decode the payload, run the handler under a
 * span with the job id and attempt in every log line, let it be stopped from outside (cancel,
 * shutdown, lost lock) by interrupting its fiber, and say how it ended. The backend turns the
 * outcome into a state change.
 */
import { Cause, Clock, Duration, Effect, Either, Exit, Fiber, FiberId, Option, Predicate, Schema } from "effect"
import { recordJobAttempt, recordJobWait } from "../metrics.ts"
import { parentFromTraceparent } from "../tracing.ts"
import {
  type envelopeOf,
  InvalidJob,
  isValidJobId,
  issuePaths,
  type Job,
  JobFailedPermanently,
  type ResolvedJobQueueOptions
} from "./model.ts"

/** Why a running attempt is interrupted from outside its handler. */
export type StopReason = "cancel" | "shutdown" | "lock-lost"

/**
 * How a backend stops an attempt from a callback (a Redis message, a lock event, a shutdown):
 * the first reason wins; the handler's fiber, once started, is interrupted.
 */
export interface StopSignal {
  reason: StopReason | undefined
  fiber: Fiber.RuntimeFiber<void, unknown> | undefined
}

export const makeStopSignal = (): StopSignal => ({ reason: undefined, fiber: undefined })

export const requestStop = (signal: StopSignal, reason: StopReason): void => {
  if (signal.reason !== undefined) return
  signal.reason = reason
  signal.fiber?.unsafeInterruptAsFork(FiberId.none)
}

export type Outcome =
  | { readonly _tag: "Completed" }
  /** `retry`: attempts remain and the failure was not permanent. `reason` holds no payload content. */
  | { readonly _tag: "Failed"; readonly retry: boolean; readonly reason: string }
  | { readonly _tag: "Stopped"; readonly reason: StopReason }

export const outcomeName = (outcome: Outcome): string =>
  outcome._tag === "Completed"
    ? "completed"
    : outcome._tag === "Failed"
      ? outcome.retry
        ? "retrying"
        : "failed"
      : outcome.reason === "cancel"
        ? "cancelled"
        : outcome.reason === "shutdown"
          ? "handed-back"
          : "lock-lost"

const invalidJobId = (queue: string, jobId: string) =>
  new InvalidJob({
    queue,
    jobId: jobId.slice(0, 200),
    reason: "A job id is 1 to 128 letters, digits, '_', '-' or '.', and not only digits"
  })

/** The same id rule on both backends (see `isValidJobId`). */
export const checkJobId = (queue: string, jobId: string): Effect.Effect<void, InvalidJob> =>
  isValidJobId(jobId) ? Effect.void : invalidJobId(queue, jobId)

/**
 * An encoder for `schema` (synchronous: a payload schema has no async transformations) that
 * checks the id, encodes the payload and makes sure it survives JSON (BullMQ stores JSON).
 */
export const jobEncoder = <A, I>(queue: string, schema: Schema.Schema<A, I>) => {
  const encode = Schema.encodeEither(schema)
  return (jobId: string, payload: A): Effect.Effect<I, InvalidJob> => {
    if (!isValidJobId(jobId)) return invalidJobId(queue, jobId)
    const encoded = encode(payload)
    if (Either.isLeft(encoded)) {
      return new InvalidJob({ queue, jobId, reason: `Payload does not encode: ${issuePaths(encoded.left)}` })
    }
    try {
      if (JSON.stringify(encoded.right) !== undefined) return Effect.succeed(encoded.right)
    } catch {
      // Reported below.
    }
    return new InvalidJob({ queue, jobId, reason: "Encoded payload is not JSON-serialisable" })
  }
}

/** A failure's kind, for the stored reason and the span: its tag or error name, never its fields. */
const describeFailure = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  if (failure._tag === "Some") {
    const error = failure.value
    if (Predicate.hasProperty(error, "_tag") && typeof error._tag === "string") return error._tag
    return error instanceof Error ? error.name : "Error"
  }
  const defect = Cause.dieOption(cause)
  if (defect._tag === "Some") return `Defect: ${defect.value instanceof Error ? defect.value.name : "unknown"}`
  return Cause.isInterruptedOnly(cause) ? "Interrupted" : "Unknown failure"
}

const permanentFailure = (cause: Cause.Cause<unknown>): JobFailedPermanently | undefined => {
  const failure = Cause.failureOption(cause)
  return failure._tag === "Some" && failure.value instanceof JobFailedPermanently ? failure.value : undefined
}

export interface AttemptInput<A, I, E, R> {
  readonly queue: string
  readonly envelope: ReturnType<typeof envelopeOf<A, I>>
  readonly jobId: string
  /** The stored job data, as JSON parsed it: decoded here. */
  readonly data: unknown
  readonly attempt: number
  readonly maxAttempts: number
  /** When the job was enqueued (ms since the epoch), if the backend knows: the first attempt's wait is a metric. */
  readonly enqueuedAt?: number | undefined
  readonly handler: (job: Job<A>) => Effect.Effect<void, E, R>
  readonly stop: StopSignal
  readonly options: ResolvedJobQueueOptions
}

const stopMessages: Record<StopReason, string> = {
  cancel: "Job cancelled: its attempt was interrupted",
  shutdown: "Job handed back: interrupted by shutdown, waiting again",
  "lock-lost": "Job lock lost: interrupted, another worker may take it"
}

/** One attempt of one job: never fails; the outcome says what to do with the job. */
export const runAttempt = <A, I, E, R>(input: AttemptInput<A, I, E, R>): Effect.Effect<Outcome, never, R> => {
  const decoded = Schema.decodeUnknownEither(input.envelope)(input.data)
  // The enqueue's span (in whichever process enqueued) is the parent of this attempt's span.
  const parent = Either.isRight(decoded) ? parentFromTraceparent(decoded.right.trace) : Option.none()
  return Effect.gen(function* () {
    if (Either.isLeft(decoded)) {
      yield* Effect.logError("Job payload does not decode: failed without retry").pipe(
        Effect.annotateLogs("issues", issuePaths(decoded.left))
      )
      return { _tag: "Failed", retry: false, reason: "Payload does not decode" } satisfies Outcome
    }
    const job: Job<A> = {
      id: input.jobId,
      payload: decoded.right.payload,
      attempt: input.attempt,
      maxAttempts: input.maxAttempts
    }
    const started = yield* Clock.currentTimeMillis
    if (input.attempt === 1 && input.enqueuedAt !== undefined) {
      yield* recordJobWait(input.queue, started - input.enqueuedAt)
    }
    yield* Effect.logDebug("Job attempt started")
    const stop = input.stop
    const exit: Exit.Exit<void, E> =
      stop.reason !== undefined
        ? Exit.interrupt(FiberId.none)
        : yield* Effect.gen(function* () {
            // A fiber of its own, so that a stop interrupts the handler and not this attempt;
            // awaiting it includes the handler's finalizers.
            const fiber = yield* Effect.fork(input.handler(job))
            stop.fiber = fiber
            if (stop.reason !== undefined) fiber.unsafeInterruptAsFork(FiberId.none)
            const exit = yield* Fiber.await(fiber)
            stop.fiber = undefined
            return exit
          })
    const durationMs = (yield* Clock.currentTimeMillis) - started
    const timed = Effect.annotateLogs("durationMs", durationMs)
    if (Exit.isSuccess(exit)) {
      yield* Effect.logInfo("Job completed").pipe(timed)
      return { _tag: "Completed" } satisfies Outcome
    }
    const cause = exit.cause
    if (stop.reason !== undefined && Cause.isInterrupted(cause)) {
      const log = stop.reason === "lock-lost" ? Effect.logWarning : Effect.logInfo
      yield* log(stopMessages[stop.reason]).pipe(timed)
      return { _tag: "Stopped", reason: stop.reason } satisfies Outcome
    }
    const permanent = permanentFailure(cause)
    if (permanent !== undefined) {
      yield* Effect.logError("Job failed permanently: not retried", cause).pipe(timed)
      return {
        _tag: "Failed",
        retry: false,
        reason: `JobFailedPermanently: ${permanent.reason.slice(0, 300)}`
      } satisfies Outcome
    }
    const reason = describeFailure(cause)
    const retry = input.attempt < input.maxAttempts
    yield* (
      retry
        ? Effect.logWarning("Job attempt failed: retrying with backoff", cause)
        : Effect.logError(`Job failed after ${input.attempt} attempts`, cause)
    ).pipe(timed)
    return { _tag: "Failed", retry, reason } satisfies Outcome
  }).pipe(
    Effect.timed,
    Effect.flatMap(([duration, outcome]) =>
      Effect.as(recordJobAttempt(input.queue, outcomeName(outcome), Duration.toMillis(duration)), outcome)
    ),
    Effect.tap((outcome) => Effect.annotateCurrentSpan("job.outcome", outcomeName(outcome))),
    Effect.withSpan("queue.job", {
      kind: "consumer",
      captureStackTrace: false,
      ...(Option.isSome(parent) ? { parent: parent.value } : {}),
      attributes: {
        "queue.name": input.queue,
        "job.id": input.jobId,
        "job.attempt": input.attempt,
        "job.max_attempts": input.maxAttempts
      }
    }),
    Effect.annotateLogs({ queue: input.queue, jobId: input.jobId, attempt: input.attempt })
  )
}
