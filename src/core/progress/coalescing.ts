/**
 * Publishing a fast producer's events (a provider's text deltas) in order without making it wait
 * for each round trip: events handed over while a publish is in flight wait in a line, and an
 * event `merge` can fold into the one before it (e.g. two deltas of the same line) is folded. The
 * first event goes out at once; a burst becomes a few larger events instead of one publish (and
 * one message on every listener) per token.
 */
import { Deferred, Effect, Queue, type Scope } from "effect"

export interface CoalescingPublisher<E> {
  /** Hands `event` over; it is published after every event handed over before it. */
  readonly offer: (event: E) => Effect.Effect<void>
  /** Waits until every event handed over so far is published. */
  readonly flush: Effect.Effect<void>
}

type Item<E> =
  { readonly _tag: "Event"; readonly event: E } | { readonly _tag: "Flush"; readonly done: Deferred.Deferred<void> }

/**
 * One fiber (living with the scope) publishes the line in order. `publish` must not fail (log
 * its failures); `merge` answers the folded event, or undefined when the two stay apart.
 */
export const makeCoalescingPublisher = <E>(
  publish: (event: E) => Effect.Effect<void>,
  merge: (previous: E, next: E) => E | undefined
): Effect.Effect<CoalescingPublisher<E>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const line = yield* Effect.acquireRelease(Queue.unbounded<Item<E>>(), Queue.shutdown)
    yield* Effect.forkScoped(
      Effect.forever(
        Effect.gen(function* () {
          // Everything waiting (at least one): what arrived during the last publish.
          const items = yield* Queue.takeBetween(line, 1, Number.MAX_SAFE_INTEGER)
          const batch: Array<Item<E>> = []
          for (const item of items) {
            const last = batch.at(-1)
            const folded = item._tag === "Event" && last?._tag === "Event" ? merge(last.event, item.event) : undefined
            if (folded === undefined) batch.push(item)
            else batch[batch.length - 1] = { _tag: "Event", event: folded }
          }
          for (const item of batch) {
            if (item._tag === "Event") yield* publish(item.event)
            else yield* Deferred.succeed(item.done, undefined)
          }
        })
      )
    )
    return {
      offer: (event) => Effect.asVoid(Queue.offer(line, { _tag: "Event", event })),
      flush: Effect.gen(function* () {
        const done = yield* Deferred.make<void>()
        yield* Queue.offer(line, { _tag: "Flush", done })
        yield* Deferred.await(done)
      })
    }
  })
