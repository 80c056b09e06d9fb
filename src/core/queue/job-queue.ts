/**
 * The job queue as a service: one tag per queue, typed by its payload schema, with two layers
 * of the same contract (`model.ts`): BullMQ on Redis (production) and in-process (embedded
 * default, unit tests).
 *
 *   class SessionJobs extends JobQueue<SessionJobs>()("SessionJobs", { payload: SessionJob }) {}
 *   SessionJobs.bullmq({ connection: { url }, queueName: "sessions" })   // or
 *   SessionJobs.inProcess({ queueName: "sessions" })                     // or
 *   SessionJobs.fromSettings({ queueName: "sessions", redisUrl, settings }) // the one configuration picks
 */
import { Context, Effect, Layer, Option, type Redacted, type Schema } from "effect"
import { makeBullMqJobQueue, type BullMqJobQueueOptions } from "./bullmq.ts"
import type { QueueSettings } from "./config.ts"
import { makeInProcessJobQueue, type InProcessJobQueueOptions } from "./in-process.ts"
import type { JobQueueShape } from "./model.ts"

export * from "./model.ts"
export { makeBullMqJobQueue, type BullMqJobQueueOptions } from "./bullmq.ts"
export { makeInProcessJobQueue, type InProcessJobQueueOptions } from "./in-process.ts"
export { queueConfig, type QueueSettings } from "./config.ts"

/** A tag class for one queue whose jobs carry `payload`; see the module comment. */
export const JobQueue =
  <Self>() =>
  <const Key extends string, A, I>(key: Key, definition: { readonly payload: Schema.Schema<A, I> }) => {
    const Tag = Context.Tag(key)<Self, JobQueueShape<A>>()
    const tag: Context.Tag<Self, JobQueueShape<A>> = Tag
    return class JobQueueTag extends Tag {
      static readonly payload = definition.payload

      /** Jobs in Redis through BullMQ; connections are closed with the layer. */
      static bullmq(options: BullMqJobQueueOptions): Layer.Layer<Self> {
        return Layer.scoped(tag, makeBullMqJobQueue(definition.payload, options))
      }

      /** Jobs in this process's memory. */
      static inProcess(options: InProcessJobQueueOptions = {}): Layer.Layer<Self> {
        return Layer.scoped(tag, makeInProcessJobQueue(definition.payload, options))
      }

      /** BullMQ when a Redis URL is configured, else in-process, said in one log line at boot. */
      static fromSettings(config: {
        readonly queueName: string
        readonly redisUrl: Option.Option<Redacted.Redacted<string>>
        readonly settings: QueueSettings
      }): Layer.Layer<Self> {
        return Option.match(config.redisUrl, {
          onSome: (url) => JobQueueTag.bullmq({ ...config.settings, queueName: config.queueName, connection: { url } }),
          onNone: () =>
            Layer.provideMerge(
              JobQueueTag.inProcess({ ...config.settings, queueName: config.queueName }),
              Layer.effectDiscard(
                Effect.logInfo(
                  `Job queue "${config.queueName}": in-process (no REDIS_URL); jobs are lost on restart and only this process runs them`
                )
              )
            )
        })
      }
    }
  }
