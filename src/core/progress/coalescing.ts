/**
 * Publishing a fast producer's events (a provider's text deltas) in order without making it wait
 * for each round trip, and at a bounded rate: the first event goes out at once; after each publish
 * round the publisher rests `interval`, and what was handed over meanwhile goes out as the next
 * round, an event `merge` can fold into the one before it (e.g. two deltas of the same line) folded.
 * A model streaming ~175 tokens/s then costs one publish (a Lua script, a Redis message to every
 * listening instance, a frame per client) per `interval` instead of one per token. `flush` ends
 * the rest at once: nothing waits for the interval once the producer is done.
 */
import { Deferred, Duration, Effect, Queue, Ref, type Scope } from "effect"

export interface CoalescingPublisher<E> {
  /** Hands `event` over; it is published after every event handed over before it. */
  readonly offer: (event: E) => Effect.Effect<void>
  /** Publishes everything handed over so far without waiting for the interval, then returns. */
  readonly flush: Effect.Effect<void>
}

type Item<E> =
  { readonly _tag: "Event"; readonly event: E } | { readonly _tag: "Flush"; readonly done: Deferred.Deferred<void> }

/**
 * One fiber (living with the scope) publishes the line in order. `publish` must not fail (log
 * its failures); `merge` answers the folded event, or undefined when the two stay apart;
 * `interval` is the least time between two publish rounds (zero: fold only what arrives during
 * a publish).
 */
export const makeCoalescingPublisher = <E>(
  publish: (event: E) => Effect.Effect<void>,
  merge: (previous: E, next: E) => E | undefined,
  interval: Duration.DurationInput = Duration.zero
): Effect.Effect<CoalescingPublisher<E>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const line = yield* Effect.acquireRelease(Queue.unbounded<Item<E>>(), Queue.shutdown)
    // Flushes handed over and not yet done, and a wake-up for a rest in progress: a flush cuts it short.
    const flushing = yield* Ref.make(0)
    const wake = yield* Effect.acquireRelease(Queue.sliding<void>(1), Queue.shutdown)
    const rest = Effect.gen(function* () {
      yield* Queue.takeAll(wake)
      if ((yield* Ref.get(flushing)) > 0) return
      yield* Effect.race(Effect.sleep(interval), Queue.take(wake))
    })
    const pacing = Duration.greaterThan(Duration.decode(interval), Duration.zero)
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.gen(function* () {
          // Everything waiting (at least one): what arrived during the last publish and rest.
          const items = yield* Queue.takeBetween(line, 1, Number.MAX_SAFE_INTEGER)
          const batch: Array<Item<E>> = []
          for (const item of items) {
            const last = batch.at(-1)
            const folded = item._tag === "Event" && last?._tag === "Event" ? merge(last.event, item.event) : undefined
            if (folded === undefined) batch.push(item)
            else batch[batch.length - 1] = { _tag: "Event", event: folded }
          }
          let published = false
          for (const item of batch) {
            if (item._tag === "Event") {
              yield* publish(item.event)
              published = true
            } else {
              yield* Ref.update(flushing, (count) => count - 1)
              yield* Deferred.succeed(item.done, undefined)
            }
          }
          if (published && pacing) yield* rest
        })
      )
    )
    return {
      offer: (event) => Effect.asVoid(Queue.offer(line, { _tag: "Event", event })),
      flush: Effect.gen(function* () {
        const done = yield* Deferred.make<void>()
        yield* Ref.update(flushing, (count) => count + 1)
        yield* Queue.offer(line, { _tag: "Flush", done })
        yield* Queue.offer(wake, undefined)
        yield* Deferred.await(done)
      })
    }
  })
