/**
 * The progress bus's behaviour, shared by both layers: the in-memory one (unit) and Redis
 * (integration, where the publishing and the subscribing bus are two instances on separate
 * connections, like two processes).
 */
import { describe, expect, it } from "@effect/vitest"
import {
  Chunk,
  Console,
  Context,
  Effect,
  Fiber,
  Layer,
  Logger,
  Option,
  Random,
  Schema,
  type Scope,
  Stream
} from "effect"
import { randomUUID } from "node:crypto"
import {
  ProgressBus,
  type ProgressBusOptions,
  type ProgressBusShape,
  type ProgressItem
} from "../../../../src/core/progress/progress-bus.ts"

export const Step = Schema.TaggedStruct("Step", { n: Schema.Int })
export const Delta = Schema.TaggedStruct("Delta", { text: Schema.String })
export const Done = Schema.TaggedStruct("Done", {})
export const TestEvent = Schema.Union(Step, Delta, Done)
export type TestEvent = typeof TestEvent.Type
export const TestState = Schema.Struct({ steps: Schema.Int, text: Schema.String })
export type TestState = typeof TestState.Type
export type Item = ProgressItem<TestEvent, TestState>

export const step = (n: number): TestEvent => ({ _tag: "Step", n })
export const done: TestEvent = { _tag: "Done" }

export const feedOf = (bus: ProgressBusShape, name: string) =>
  bus.feed({ name, event: TestEvent, state: TestState, isTerminal: (event) => event._tag === "Done" })

export const uniqueName = () => `t-${randomUUID().slice(0, 8)}`

/** Two buses over one store: two instances for Redis; the same one in memory. */
export interface BusPair {
  readonly publisher: ProgressBusShape
  readonly subscriber: ProgressBusShape
}
export type MakePair = (options?: ProgressBusOptions) => Effect.Effect<BusPair, never, Scope.Scope>

export const buildBus = (layer: Layer.Layer<ProgressBus>) =>
  Effect.map(Layer.build(layer), (context) => Context.get(context, ProgressBus))

/** Pulls a stream item by item from the test fiber; every wait is bounded. */
export const puller = <A, E>(stream: Stream.Stream<A, E>) =>
  Effect.gen(function* () {
    const pull = yield* Stream.toPull(stream)
    const buffer: Array<A> = []
    let ended = false
    const fill = Effect.gen(function* () {
      while (buffer.length === 0 && !ended) {
        const chunk = yield* pull.pipe(
          Effect.catchAll(
            Option.match({
              onNone: () => Effect.sync(() => ((ended = true), Chunk.empty<A>())),
              onSome: (error) => Effect.die(error)
            })
          )
        )
        buffer.push(...chunk)
      }
    }).pipe(
      Effect.orDie,
      // No deadline of its own (5 s was a guess a loaded machine missed): the test's timeout ends it.
      Effect.onInterrupt(() => Console.error(`interrupted while waiting for the stream's next item`))
    )
    const next = Effect.flatMap(fill, () => {
      const item = buffer.shift()
      return item === undefined ? Effect.dieMessage("the stream ended") : Effect.succeed(item)
    })
    return {
      next,
      take: (n: number) => Effect.replicateEffect(next, n),
      /** Whether the stream ended with nothing more to deliver. */
      ended: Effect.map(fill, () => ended && buffer.length === 0)
    }
  })

export const collect = <A, E>(stream: Stream.Stream<A, E>) =>
  Stream.runCollect(stream).pipe(
    Effect.map(Chunk.toReadonlyArray),
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new Error("the stream did not end") }),
    Effect.orDie
  )

export const seqs = (items: ReadonlyArray<Item>) =>
  items.map((item) => (item._tag === "Snapshot" ? `S${item.seq}` : item.seq))

/** Events follow each other by exactly one; a snapshot may jump ahead, never back. */
export const expectConsistent = (items: ReadonlyArray<Item>, afterSeq: number) => {
  let last = afterSeq
  items.forEach((item, index) => {
    if (item._tag === "Event") expect(item.seq, `item ${index}`).toBe(last + 1)
    else if (index > 0) expect(item.seq, `snapshot at ${index}`).toBeGreaterThan(last)
    last = item.seq
  })
  return last
}

const stepsReducer = {
  initial: { steps: 0, text: "" },
  reduce: (state: TestState, event: TestEvent): TestState =>
    event._tag === "Step"
      ? { ...state, steps: state.steps + 1 }
      : event._tag === "Delta"
        ? { ...state, text: state.text + event.text }
        : state
}

export const progressBusSuite = (name: string, makePair: MakePair) =>
  describe(name, () => {
    it.scopedLive("delivers events in publish order with consecutive seqs", () =>
      Effect.gen(function* () {
        const { publisher, subscriber } = yield* makePair()
        const name = uniqueName()
        const listener = yield* puller(feedOf(subscriber, name).subscribe("job"))
        expect(yield* listener.next).toEqual({
          _tag: "Snapshot",
          topic: "job",
          seq: 0,
          state: Option.none(),
          terminal: false
        })
        const published = yield* Effect.forEach([1, 2, 3, 4, 5], (n) => feedOf(publisher, name).publish("job", step(n)))
        expect(published).toEqual([1, 2, 3, 4, 5])
        const items = yield* listener.take(5)
        expect(items).toEqual(
          [1, 2, 3, 4, 5].map((n) => ({ _tag: "Event", topic: "job", seq: n, event: step(n), terminal: false }))
        )
        // Topics are independent.
        expect(yield* feedOf(publisher, name).publish("other", step(1))).toBe(1)
      })
    )

    it.scopedLive("a late subscriber gets the current state with its seq, then only newer events", () =>
      Effect.gen(function* () {
        const { publisher, subscriber } = yield* makePair()
        const pub = feedOf(publisher, uniqueName())
        const sub = feedOf(subscriber, pub.name)
        yield* pub.publish("job", step(1), { state: { steps: 1, text: "" } })
        yield* pub.publish("job", { _tag: "Delta", text: "hi" }, { state: { steps: 1, text: "hi" } })
        // No state given: the event leaves the state as it was.
        yield* pub.publish("job", step(99))
        const listener = yield* puller(sub.subscribe("job"))
        expect(yield* listener.next).toEqual({
          _tag: "Snapshot",
          topic: "job",
          seq: 3,
          state: Option.some({ steps: 1, text: "hi" }),
          terminal: false
        })
        yield* pub.publish("job", step(2), { state: { steps: 2, text: "hi" } })
        expect(yield* listener.next).toMatchObject({ _tag: "Event", seq: 4, event: step(2) })
        expect(yield* sub.snapshot("job")).toMatchObject({ seq: 4, state: Option.some({ steps: 2, text: "hi" }) })
      })
    )

    it.scopedLive("resuming after a seq delivers exactly the missed events, then live ones", () =>
      Effect.gen(function* () {
        const { publisher, subscriber } = yield* makePair()
        const pub = feedOf(publisher, uniqueName())
        yield* Effect.forEach([1, 2, 3, 4, 5], (n) => pub.publish("job", step(n), { state: { steps: n, text: "" } }))
        const listener = yield* puller(feedOf(subscriber, pub.name).subscribe("job", { afterSeq: 2 }))
        expect(seqs(yield* listener.take(3))).toEqual([3, 4, 5])
        yield* pub.publish("job", step(6))
        yield* pub.publish("job", step(7))
        yield* pub.publish("job", done)
        const rest = yield* listener.take(3)
        expect(rest.map((item) => item._tag === "Event" && item.event)).toEqual([step(6), step(7), done])
        expect(seqs(rest)).toEqual([6, 7, 8])
        expect(yield* listener.ended).toBe(true)
        // afterSeq 0: everything, as long as the buffer holds it.
        const all = yield* collect(feedOf(subscriber, pub.name).subscribe("job", { afterSeq: 0 }))
        expect(seqs(all)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
      })
    )

    it.scopedLive("a seq older than the replay buffer, ahead of the topic or unusable gets a snapshot", () =>
      Effect.gen(function* () {
        const { publisher, subscriber } = yield* makePair({ replayLimit: 3 })
        const pub = feedOf(publisher, uniqueName())
        const sub = feedOf(subscriber, pub.name)
        yield* Effect.forEach([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], (n) =>
          pub.publish("job", step(n), { state: { steps: n, text: "" } })
        )
        const first = (afterSeq: number) => Effect.flatMap(puller(sub.subscribe("job", { afterSeq })), (l) => l.next)
        // The buffer holds 8, 9, 10: after 7 is exactly covered.
        expect(seqs(yield* Effect.flatMap(puller(sub.subscribe("job", { afterSeq: 7 })), (l) => l.take(3)))).toEqual([
          8, 9, 10
        ])
        for (const afterSeq of [6, 0, 11, 1_000, -1, 2.5, Number.NaN]) {
          expect(yield* first(afterSeq), `afterSeq ${afterSeq}`).toEqual({
            _tag: "Snapshot",
            topic: "job",
            seq: 10,
            state: Option.some({ steps: 10, text: "" }),
            terminal: false
          })
        }
      })
    )

    it.scopedLive("events published while a subscription is set up are neither lost nor repeated", () =>
      Effect.gen(function* () {
        const { publisher, subscriber } = yield* makePair()
        const pub = feedOf(publisher, uniqueName())
        const sub = feedOf(subscriber, pub.name)
        for (let round = 0; round < 30; round++) {
          const topic = `round-${round}`
          const writer = (base: number) =>
            Effect.forEach(
              Array.from({ length: 20 }, (_, i) => base + i),
              (n) => pub.publish(topic, step(n), { state: { steps: n, text: "" } })
            )
          const writers = yield* Effect.fork(
            Effect.zipRight(Effect.all([writer(0), writer(100)], { concurrency: 2 }), pub.publish(topic, done))
          )
          yield* Effect.sleep(yield* Random.nextIntBetween(0, 4))
          const afterSeq = round % 3 === 0 ? undefined : 0
          const [items] = yield* Effect.all([collect(sub.subscribe(topic, { afterSeq })), Fiber.join(writers)], {
            concurrency: 2
          })
          const last = expectConsistent(items, 0)
          expect(last, `round ${round}`).toBe(41)
          if (afterSeq === 0) expect(items.every((item) => item._tag === "Event")).toBe(true)
          else expect(items[0]?._tag).toBe("Snapshot")
          const events = items.filter((item) => item._tag === "Event")
          expect(new Set(events.map((item) => item.seq)).size).toBe(events.length)
        }
      })
    )

    it.scopedLive("a terminal event ends the stream after it; a finished topic ends a new subscription at once", () =>
      Effect.gen(function* () {
        const { publisher, subscriber } = yield* makePair()
        const pub = feedOf(publisher, uniqueName())
        const sub = feedOf(subscriber, pub.name)
        const listener = yield* puller(sub.subscribe("job"))
        yield* listener.next
        yield* pub.publish("job", step(1), { state: { steps: 1, text: "" } })
        yield* pub.publish("job", done, { state: { steps: 1, text: "done" } })
        expect(yield* listener.take(2)).toMatchObject([
          { seq: 1, terminal: false },
          { seq: 2, event: done, terminal: true }
        ])
        expect(yield* listener.ended).toBe(true)
        expect(yield* collect(sub.subscribe("job"))).toEqual([
          {
            _tag: "Snapshot",
            topic: "job",
            seq: 2,
            state: Option.some({ steps: 1, text: "done" }),
            terminal: true
          }
        ])
        expect(yield* collect(sub.subscribe("job", { afterSeq: 2 }))).toEqual([])
        expect(seqs(yield* collect(sub.subscribe("job", { afterSeq: 1 })))).toEqual([2])
      })
    )

    it.scopedLive("clear removes the topic and ends its subscriptions; the topic starts again from seq 1", () =>
      Effect.gen(function* () {
        const { publisher, subscriber } = yield* makePair()
        const pub = feedOf(publisher, uniqueName())
        const sub = feedOf(subscriber, pub.name)
        yield* Effect.forEach([1, 2, 3], (n) => pub.publish("job", step(n), { state: { steps: n, text: "" } }))
        const listener = yield* puller(sub.subscribe("job"))
        expect(yield* listener.next).toMatchObject({ _tag: "Snapshot", seq: 3 })
        yield* pub.clear("job")
        expect(yield* listener.ended).toBe(true)
        expect(yield* sub.snapshot("job")).toEqual({
          _tag: "Snapshot",
          topic: "job",
          seq: 0,
          state: Option.none(),
          terminal: false
        })
        yield* pub.clear("job")
        expect(yield* pub.publish("job", step(1))).toBe(1)
      })
    )

    it.scopedLive("messages that do not decode are logged and skipped; the stream goes on", () => {
      const warnings: Array<unknown> = []
      const capture = Logger.make(({ logLevel, message }) => {
        if (logLevel._tag === "Warning") warnings.push(Array.isArray(message) ? message[0] : message)
      })
      return Effect.gen(function* () {
        const { publisher, subscriber } = yield* makePair()
        const name = uniqueName()
        const pub = feedOf(publisher, name)
        const loose = publisher.feed({ name, event: Schema.Unknown, state: Schema.Unknown })
        const sub = feedOf(subscriber, name)
        const listener = yield* puller(sub.subscribe("job"))
        yield* listener.next
        yield* pub.publish("job", step(1))
        yield* loose.publish("job", { _tag: "Bogus" }, { state: "not a state" })
        yield* pub.publish("job", step(3))
        expect(seqs(yield* listener.take(2))).toEqual([1, 3])
        // The same from the replay buffer, and a stored state that does not decode reads as none.
        expect(seqs(yield* Effect.flatMap(puller(sub.subscribe("job", { afterSeq: 0 })), (l) => l.take(2)))).toEqual([
          1, 3
        ])
        expect(yield* sub.snapshot("job")).toMatchObject({ seq: 3, state: Option.none() })
        expect(warnings).toEqual([
          "Progress message skipped: it does not decode",
          "Progress message skipped: it does not decode",
          "Progress message skipped: it does not decode"
        ])
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
    })

    it.scopedLive("topics expire after the ttl", () =>
      Effect.gen(function* () {
        const { publisher, subscriber } = yield* makePair({ ttl: "300 millis" })
        const pub = feedOf(publisher, uniqueName())
        yield* pub.publish("job", step(1), { state: { steps: 1, text: "" } })
        expect(yield* feedOf(subscriber, pub.name).snapshot("job")).toMatchObject({ seq: 1 })
        yield* Effect.sleep("700 millis")
        expect(yield* feedOf(subscriber, pub.name).snapshot("job")).toMatchObject({ seq: 0, state: Option.none() })
      })
    )

    it.scopedLive("a reducing publisher keeps the state; concurrent publishers lose no update", () =>
      Effect.gen(function* () {
        const { publisher, subscriber } = yield* makePair()
        const name = uniqueName()
        const one = yield* feedOf(publisher, name).publisher("job", stepsReducer)
        const two = yield* feedOf(subscriber, name).publisher("job", stepsReducer)
        yield* Effect.all(
          [
            Effect.forEach([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], (n) => one.publish(step(n))),
            Effect.forEach([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], (n) => two.publish(step(n))),
            two.publish({ _tag: "Delta", text: "x" })
          ],
          { concurrency: "unbounded" }
        )
        expect(yield* feedOf(subscriber, name).snapshot("job")).toMatchObject({
          seq: 21,
          state: Option.some({ steps: 20, text: "x" })
        })
        const later = yield* feedOf(publisher, name).publisher("job", stepsReducer)
        expect(yield* later.current).toEqual({ seq: 21, state: { steps: 20, text: "x" } })
        expect(yield* later.publish(step(0))).toBe(22)
      })
    )

    // Its topic lost (here expired; in production also Redis restarted empty), a reducing publisher
    // used to start again from seq 1 and the reducer's initial state: a listener resuming with a seq
    // of the old numbering skipped the new events up to it, and the state forgot all before the loss.
    it.scopedLive("a reducing publisher whose topic was lost numbers on from its last seq, with its state", () =>
      Effect.gen(function* () {
        const { publisher, subscriber } = yield* makePair({ ttl: "300 millis" })
        const name = uniqueName()
        const job = yield* feedOf(publisher, name).publisher("job", stepsReducer)
        yield* job.publish(step(1))
        yield* job.publish({ _tag: "Delta", text: "ab" })
        const listener = feedOf(subscriber, name)
        yield* Effect.sleep("700 millis")
        expect(yield* listener.snapshot("job")).toMatchObject({ seq: 0, state: Option.none() })

        expect(yield* job.publish(step(3))).toBe(3)
        expect(yield* listener.snapshot("job")).toMatchObject({ seq: 3, state: Option.some({ steps: 2, text: "ab" }) })
        // A listener that had seq 2 gets exactly the one event after it; one further behind, a snapshot.
        const resumed = yield* puller(listener.subscribe("job", { afterSeq: 2 }))
        expect(yield* resumed.next).toMatchObject({ _tag: "Event", seq: 3, event: step(3) })
        const behind = yield* puller(listener.subscribe("job", { afterSeq: 1 }))
        expect(yield* behind.next).toMatchObject({ _tag: "Snapshot", seq: 3 })
        expect(yield* job.publish(done)).toBe(4)
        expect(yield* resumed.next).toMatchObject({ _tag: "Event", seq: 4, terminal: true })
        expect(yield* resumed.ended).toBe(true)
      })
    )

    it.scopedLive("a listener that falls behind catches up from the buffer, or gets a snapshot past it", () =>
      Effect.gen(function* () {
        const run = (replayLimit: number) =>
          Effect.gen(function* () {
            const { publisher, subscriber } = yield* makePair({ listenerBuffer: 4, replayLimit })
            const pub = feedOf(publisher, uniqueName())
            const listener = yield* puller(feedOf(subscriber, pub.name).subscribe("job"))
            yield* listener.next
            // A witness on another topic of the same buses: messages reach a process in the order they
            // were published, so once the witness has its event, all 30 were offered to the listener.
            const marker = feedOf(publisher, uniqueName())
            const witness = yield* puller(feedOf(subscriber, marker.name).subscribe("job"))
            yield* witness.next
            yield* Effect.forEach(
              Array.from({ length: 30 }, (_, i) => i + 1),
              (n) => pub.publish("job", step(n), { state: { steps: n, text: "" } })
            )
            yield* marker.publish("job", step(1))
            // Every message has reached the listener's (full) queue before it reads (not a guessed delay).
            expect(yield* witness.next).toMatchObject({ seq: 1 })
            const items: Array<Item> = []
            while (items.at(-1)?.seq !== 30) items.push(yield* listener.next)
            yield* pub.publish("job", done)
            while (!(yield* listener.ended)) items.push(yield* listener.next)
            expectConsistent(items, 0)
            return seqs(items)
          })
        expect(yield* run(500)).toEqual(Array.from({ length: 31 }, (_, i) => i + 1))
        expect(yield* run(5)).toEqual([1, 2, 3, 4, "S30", 31])
      })
    )

    it.scopedLive("many listeners of one topic each get every event", () =>
      Effect.gen(function* () {
        const { publisher, subscriber } = yield* makePair()
        const pub = feedOf(publisher, uniqueName())
        const listeners = yield* Effect.forEach([1, 2, 3, 4, 5], () =>
          puller(feedOf(subscriber, pub.name).subscribe("job"))
        )
        yield* Effect.forEach(listeners, (listener) => listener.next)
        yield* Effect.forEach([1, 2, 3], (n) => pub.publish("job", step(n)))
        yield* pub.publish("job", done)
        for (const listener of listeners) expect(seqs(yield* listener.take(4))).toEqual([1, 2, 3, 4])
      })
    )
  })
