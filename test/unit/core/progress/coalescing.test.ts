/**
 * The coalescing publisher: order kept, events handed over during a publish (or the interval after
 * it) folded, flush waits for everything and cuts the interval short. Time is the TestClock's.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Queue, TestClock } from "effect"
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

  describe("with an interval", () => {
    const interval = Duration.millis(75)
    const texts = (events: ReadonlyArray<Event>) =>
      events.map((event) => (event.kind === "delta" ? `${event.index}:${event.text}` : event.kind))

    it.scoped("the first delta at once, then at most one publish round per interval, every character in order", () =>
      Effect.gen(function* () {
        const published = yield* Queue.unbounded<Event>()
        const publisher = yield* makeCoalescingPublisher<Event>(
          (event) => Queue.offer(published, event),
          foldDeltas,
          interval
        )
        yield* publisher.offer(delta(0, "Sat"))
        // No time passes: the first delta is not held back.
        expect(texts([yield* Queue.take(published)])).toEqual(["0:Sat"])
        for (const piece of ["urd", "ay ", "wor", "ks"]) yield* publisher.offer(delta(0, piece))
        yield* TestClock.adjust(Duration.millis(74))
        expect(yield* Queue.size(published)).toBe(0)
        yield* TestClock.adjust(Duration.millis(1))
        expect(texts([yield* Queue.take(published)])).toEqual(["0:urday works"])
        // A line ends within the next interval: its tail, the other event and the next line's head, in order.
        for (const event of [delta(0, "!"), { kind: "other" } as const, delta(1, "De"), delta(1, "al")])
          yield* publisher.offer(event)
        yield* TestClock.adjust(interval)
        expect(texts(Array.from(yield* Queue.takeN(published, 3)))).toEqual(["0:!", "other", "1:Deal"])
        // After a quiet interval, the next delta goes out as soon as the rest is over.
        yield* TestClock.adjust(interval)
        yield* publisher.offer(delta(1, ", I"))
        expect(texts([yield* Queue.take(published)])).toEqual(["1:, I"])
      })
    )

    it.scoped("flush publishes the last deltas without waiting for the interval", () =>
      Effect.gen(function* () {
        const published: Array<Event> = []
        const started = yield* Queue.unbounded<Event>()
        const publisher = yield* makeCoalescingPublisher<Event>(
          (event) => Effect.sync(() => void published.push(event)).pipe(Effect.zipRight(Queue.offer(started, event))),
          foldDeltas,
          interval
        )
        yield* publisher.offer(delta(0, "He"))
        yield* Queue.take(started)
        yield* publisher.offer(delta(0, "llo"))
        yield* publisher.offer(delta(0, " you"))
        // The TestClock never moves: only the flush can end the rest.
        const flushed = yield* Effect.fork(publisher.flush)
        yield* Fiber.join(flushed)
        expect(texts(published)).toEqual(["0:He", "0:llo you"])
        yield* publisher.offer(delta(1, "x"))
        yield* publisher.flush
        expect(texts(published)).toEqual(["0:He", "0:llo you", "1:x"])
      })
    )
  })
})
