/**
 * The embedded progress store: this process's memory, for `npm run dev` and unit tests. Same
 * semantics as Redis (seq, state, bounded replay buffer, expiry, clear) for listeners in this
 * process only.
 *
 * Each publish updates the topic and hands the message to the listeners in one synchronous step:
 * that is what makes it atomic and keeps deliveries in seq order. (A `Ref` and a `PubSub` would be
 * two steps, and a shared `PubSub` sends every topic to every listener and lets the slowest one
 * decide for all; the per-listener queues of `router.ts` are shared with the Redis layer instead.)
 */
import { Duration, Effect, Schedule, type Scope } from "effect"
import { CLEARED_MESSAGE, eventMessage, type ProgressBackend, readStored } from "./backend.ts"
import { ProgressBusError, type ResolvedOptions } from "./model.ts"
import { makeRouter } from "./router.ts"

interface MemoryTopic {
  seq: number
  state: string | undefined
  terminal: boolean
  log: Array<{ readonly seq: number; readonly message: string }>
  expiresAt: number
}

export const makeMemoryBackend = (options: ResolvedOptions): Effect.Effect<ProgressBackend, never, Scope.Scope> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const topics = new Map<string, MemoryTopic>()
    const router = makeRouter(options.listenerBuffer, {
      subscribe: () => Promise.resolve(),
      unsubscribe: () => undefined
    })

    const live = (topic: string) => {
      const stored = topics.get(topic)
      if (stored !== undefined && stored.expiresAt <= clock.unsafeCurrentTimeMillis()) {
        topics.delete(topic)
        return undefined
      }
      return stored
    }

    const sweep = Effect.sync(() => {
      const now = clock.unsafeCurrentTimeMillis()
      for (const [topic, stored] of topics) if (stored.expiresAt <= now) topics.delete(topic)
    })
    yield* Effect.forkScoped(Effect.repeat(sweep, Schedule.spaced(Duration.millis(Math.min(options.ttlMs, 60_000)))))

    const backend: ProgressBackend = {
      publish: (request) =>
        Effect.sync(() => {
          const stored = live(request.topic)
          if (request.expectSeq !== undefined && request.expectSeq !== (stored?.seq ?? 0)) return "conflict" as const
          const topic: MemoryTopic = stored ?? { seq: 0, state: undefined, terminal: false, log: [], expiresAt: 0 }
          if (stored === undefined) topics.set(request.topic, topic)
          const seq = Math.max(topic.seq, request.floorSeq ?? 0) + 1
          const message = eventMessage(seq, request.terminal, request.event)
          topic.seq = seq
          if (request.state !== undefined) topic.state = request.state
          topic.terminal = request.terminal
          topic.log.push({ seq, message })
          if (topic.log.length > options.replayLimit) topic.log.splice(0, topic.log.length - options.replayLimit)
          topic.expiresAt = clock.unsafeCurrentTimeMillis() + options.ttlMs
          router.dispatch(request.topic, message)
          return seq
        }),
      read: (topic, afterSeq) => Effect.sync(() => readStored(live(topic), afterSeq)),
      listen: (topic) =>
        router
          .listen(topic)
          .pipe(Effect.mapError((cause) => new ProgressBusError({ operation: "subscribe", topic, cause }))),
      clear: (topic) =>
        Effect.sync(() => {
          topics.delete(topic)
          router.dispatch(topic, CLEARED_MESSAGE)
        })
    }
    return backend
  })
