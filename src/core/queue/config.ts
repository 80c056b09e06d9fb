/**
 * The job queue's environment variables, as one `Config` to place in `AppConfig` (under
 * `queue`), so that they are decoded once at boot with the others.
 */
import { Config } from "effect"

export interface QueueSettings {
  readonly prefix: string
  readonly concurrency: number
  readonly attempts: number
  readonly backoffMs: number
  readonly lockDurationMs: number
  readonly stalledIntervalMs: number
  readonly maxStalledCount: number
  readonly shutdownGraceMs: number
  readonly keepCompletedSeconds: number
  readonly keepFailedSeconds: number
}

const intBetween = (name: string, min: number, max: number, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: `Expected an integer from ${min} to ${max}`, validation: (n) => n >= min && n <= max }),
    Config.withDefault(fallback)
  )

export const queueConfig: Config.Config<QueueSettings> = Config.all({
  prefix: Config.string("QUEUE_PREFIX").pipe(
    Config.validate({
      message: "Expected letters, digits, '_', '-' or '.'",
      validation: (prefix) => /^[A-Za-z0-9_.-]{1,64}$/.test(prefix)
    }),
    Config.withDefault("wingmate")
  ),
  // Above a burst of 20 sessions at once: a job is mostly waiting on providers (sharp has its own
  // IMAGE_CONCURRENCY), and at 16 the 17th to 20th waited a whole session for a slot (bench:latency).
  concurrency: intBetween("QUEUE_CONCURRENCY", 1, 500, 32),
  attempts: intBetween("QUEUE_ATTEMPTS", 1, 50, 3),
  backoffMs: intBetween("QUEUE_BACKOFF_MS", 0, 3_600_000, 2_000),
  lockDurationMs: intBetween("QUEUE_LOCK_DURATION_MS", 1_000, 3_600_000, 30_000),
  stalledIntervalMs: intBetween("QUEUE_STALLED_INTERVAL_MS", 500, 3_600_000, 30_000),
  maxStalledCount: intBetween("QUEUE_MAX_STALLED_COUNT", 0, 100, 1),
  shutdownGraceMs: intBetween("QUEUE_SHUTDOWN_GRACE_MS", 0, 600_000, 8_000),
  keepCompletedSeconds: intBetween("QUEUE_KEEP_COMPLETED_SECONDS", 0, 30 * 86_400, 3_600),
  keepFailedSeconds: intBetween("QUEUE_KEEP_FAILED_SECONDS", 0, 30 * 86_400, 86_400)
})
