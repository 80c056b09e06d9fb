/**
 * The `sessions` queue (BullMQ with REDIS_URL, in-process otherwise) and the sessions' progress
 * feed on the ProgressBus (topic: the session id).
 */
import { Effect, Layer, Schema } from "effect"
import { AppConfig } from "../../core/config.ts"
import { ProgressBus } from "../../core/progress/progress-bus.ts"
import { JobQueue } from "../../core/queue/job-queue.ts"
import { SessionEvent, SessionProgressState } from "../../domain/sessions.ts"

/** A job names the session and its owner; nothing private travels through the queue. */
export const SessionJob = Schema.Struct({ sessionId: Schema.String, userId: Schema.String })
export type SessionJob = typeof SessionJob.Type

export const SESSIONS_QUEUE = "sessions"

export class SessionJobs extends JobQueue<SessionJobs>()("SessionJobs", { payload: SessionJob }) {
  /** From AppConfig: REDIS_URL and QUEUE_*. */
  static readonly layer: Layer.Layer<SessionJobs, never, AppConfig> = Layer.unwrapEffect(
    Effect.map(AppConfig, (config) =>
      SessionJobs.fromSettings({ queueName: SESSIONS_QUEUE, redisUrl: config.redisUrl, settings: config.queue })
    )
  )
}

export const isTerminalEvent = (event: SessionEvent) =>
  event._tag === "Completed" || event._tag === "Failed" || event._tag === "Cancelled"

export const sessionFeed = Effect.map(ProgressBus, (bus) =>
  bus.feed({ name: "sessions", event: SessionEvent, state: SessionProgressState, isTerminal: isTerminalEvent })
)
