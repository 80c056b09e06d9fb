/** The coalescing publisher: order kept, events handed over during a publish folded, flush waits. */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Queue } from "effect"
import { makeCoalescingPublisher } from "../../../../src/core/progress/coalescing.ts"

type Event = { readonly kind: "delta"; readonly index: number; readonly text: string } | { readonly kind: "other" }

const foldDeltas = (previous: Event, next: Event): Event | undefined =>
  previous.kind === "delta" && next.kind === "delta" && previous.index === next.index
    ? { kind: "delta", index: previous.index, text: previous.text + next.text }
    : undefined

const delta = (index: number, text: string): Event => ({ kind: "delta", index, text })

describe("makeCoalescingPublisher", () => {
  it.scoped("the first event goes out at once; those handed over meanwhile are folded where they may be", () =>
    Effect.gen(function* () {
      const published: Array<Event> = []
      const started = yield* Queue.unbounded<Event>()
      const gate = yield* Deferred.make<void>()
      const publisher = yield* makeCoalescingPublisher<Event>(
        (event) =>
          Effect.gen(function* () {
            yield* Queue.offer(started, event)
            // The first publish is held until the test has handed over the rest.
            if (published.length === 0) yield* Deferred.await(gate)
            published.push(event)
          }),
        foldDeltas
      )
      yield* publisher.offer(delta(0, "Hel"))
      expect(yield* Queue.take(started)).toEqual(delta(0, "Hel"))
      for (const event of [
        delta(0, "lo"),
        delta(0, " there"),
        delta(1, "Hi"),
        delta(1, "!"),
        { kind: "other" } as const
      ])
        yield* publisher.offer(event)
      yield* publisher.offer(delta(1, " again"))
      yield* Deferred.succeed(gate, undefined)
      yield* publisher.flush
      expect(published).toEqual([
        delta(0, "Hel"),
        delta(0, "lo there"),
        delta(1, "Hi!"),
        { kind: "other" },
        delta(1, " again")
      ])
    })
  )

  it.scoped("flush with nothing handed over returns; events after a flush are still published in order", () =>
    Effect.gen(function* () {
      const published: Array<Event> = []
      const publisher = yield* makeCoalescingPublisher<Event>(
        (event) => Effect.sync(() => void published.push(event)),
        foldDeltas
      )
      yield* publisher.flush
      yield* publisher.offer(delta(0, "a"))
      yield* publisher.flush
      yield* publisher.offer({ kind: "other" })
      yield* publisher.offer(delta(0, "b"))
      yield* publisher.flush
      expect(published.map((event) => (event.kind === "delta" ? event.text : event.kind))).toEqual(["a", "other", "b"])
    })
  )
})
