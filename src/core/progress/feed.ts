/**
 * Typed feeds over a progress store, and the subscription algorithm both layers share.
 *
 * Why a subscription has no gap and no repeat:
 * 1. It registers its listener and waits until the store confirms that messages flow (Redis:
 *    the SUBSCRIBE reply), then reads what it missed in one atomic step (a Lua script). A publish
 *    is atomic too (seq, buffer, state and PUBLISH in one script), so every event is either in
 *    that read (published before it) or delivered to the listener (published after it, hence
 *    after the subscription was live), and possibly both.
 * 2. It remembers the last seq it delivered and drops any message at or below it (the "both").
 * 3. Messages on one channel arrive in publish order, i.e. seq order. A message further ahead than
 *    last + 1 means something was lost (connection drop, full listener queue): it catches up
 *    from the replay buffer with its last seq before going on. The same happens on a `Resync`
 *    (the subscriber connection came back) and when its queue overflowed, so a loss is repaired
 *    even if no later message comes to reveal it.
 * 4. A catch-up returns every event after the last seq if the buffer still holds them all;
 *    otherwise a fresh snapshot (state and the seq it stands for), after which only later
 *    events follow. A listener that falls further behind than `replayLimit` events thus gets
 *    a snapshot mid-stream: it replaces what the listener had.
 * Messages that do not decode are logged and skipped, their seq still counted as seen.
 */
import { Chunk, Effect, ExecutionStrategy, Exit, Option, Queue, Schedule, Schema, Scope, Stream } from "effect"
import { type ProgressBackend, type ReadResult, usableSeq } from "./backend.ts"
import {
  ProgressBusError,
  type ProgressBusShape,
  type ProgressEvent,
  type ProgressFeed,
  type ProgressFeedSpec,
  type ProgressItem,
  type ProgressPublisher,
  type ProgressReducer,
  type ProgressSnapshot
} from "./model.ts"

const Message = Schema.parseJson(
  Schema.Union(
    Schema.Struct({
      seq: Schema.Int.pipe(Schema.positive()),
      terminal: Schema.Boolean,
      event: Schema.Unknown
    }),
    Schema.Struct({ cleared: Schema.Literal(true) })
  )
)
const decodeMessage = Schema.decodeEither(Message)

/** Catch-up reads retry briefly: the command connection may still be coming back with the subscriber. */
const readRetry = Schedule.intersect(Schedule.exponential("100 millis"), Schedule.recurs(3))

/** How many conflicting writers a reducing publisher outlasts before it gives up. */
const MAX_CONFLICTS = 20

const problem = (error: { readonly message: string }) => error.message.slice(0, 500)

export const makeFeed = <E, EI, S, SI>(
  backend: ProgressBackend,
  spec: ProgressFeedSpec<E, EI, S, SI>
): ProgressFeed<E, S> => {
  const key = (topic: string) => `${spec.name}:${topic}`
  const decodeEvent = Schema.decodeUnknownEither(spec.event)
  const decodeState = Schema.decodeEither(Schema.parseJson(spec.state))
  const encodeEvent = Schema.encode(Schema.parseJson(spec.event))
  const encodeState = Schema.encode(Schema.parseJson(spec.state))

  const skipped = (topic: string, reason: string, seq?: number) =>
    Effect.logWarning("Progress message skipped: it does not decode").pipe(
      Effect.annotateLogs({ feed: spec.name, topic, reason, ...(seq === undefined ? {} : { seq }) })
    )

  const snapshotOf = (topic: string, result: Extract<ReadResult, { _tag: "Snapshot" }>) =>
    Effect.gen(function* () {
      let state = Option.none<S>()
      if (result.state !== undefined) {
        const decoded = decodeState(result.state)
        if (decoded._tag === "Right") state = Option.some(decoded.right)
        else yield* skipped(topic, `state: ${problem(decoded.left)}`, result.seq)
      }
      const snapshot: ProgressSnapshot<S> = {
        _tag: "Snapshot",
        topic,
        seq: result.seq,
        state,
        terminal: result.terminal
      }
      return snapshot
    })

  const publishEncoded = (
    topic: string,
    event: E,
    state: Option.Option<S>,
    expectSeq: number | undefined,
    floorSeq?: number
  ) =>
    Effect.gen(function* () {
      const encodedEvent = yield* encodeEvent(event)
      const encodedState = Option.isSome(state) ? yield* encodeState(state.value) : undefined
      return { encodedEvent, encodedState }
    }).pipe(
      Effect.mapError((cause) => new ProgressBusError({ operation: "encode", topic, cause })),
      Effect.flatMap(({ encodedEvent, encodedState }) =>
        backend.publish({
          topic: key(topic),
          event: encodedEvent,
          state: encodedState,
          terminal: spec.isTerminal?.(event) ?? false,
          expectSeq,
          floorSeq
        })
      )
    )

  const publish = (topic: string, event: E, options?: { readonly state?: S | undefined }) =>
    publishEncoded(topic, event, Option.fromNullable(options?.state), undefined).pipe(
      Effect.flatMap((seq) =>
        // Without an expected seq the store has nothing to conflict with.
        seq === "conflict" ? Effect.dieMessage("An unconditional publish reported a conflict") : Effect.succeed(seq)
      )
      // No span: a job publishes every delta, and a span each would drown its trace.
    )

  const snapshot = (topic: string) =>
    Effect.flatMap(backend.read(key(topic), undefined), (result) =>
      result._tag === "Snapshot"
        ? snapshotOf(topic, result)
        : Effect.fail(new ProgressBusError({ operation: "read", topic, cause: new Error("Expected a snapshot") }))
    )

  const publisher = (topic: string, reducer: ProgressReducer<E, S>) =>
    Effect.gen(function* () {
      const load = Effect.map(snapshot(topic), (loaded) => ({
        seq: loaded.seq,
        state: Option.getOrElse(loaded.state, () => reducer.initial)
      }))
      let current = yield* load
      // The highest seq this publisher has seen: its topic's numbering never goes back below it.
      let highest = current.seq
      const lock = yield* Effect.makeSemaphore(1)
      const attempt = (event: E, conflicts: number): Effect.Effect<number, ProgressBusError> =>
        Effect.gen(function* () {
          const next = reducer.reduce(current.state, event)
          const floor = highest > current.seq ? highest : undefined
          const seq = yield* publishEncoded(topic, event, Option.some(next), current.seq, floor)
          if (seq !== "conflict") {
            current = { seq, state: next }
            highest = seq
            return seq
          }
          if (conflicts >= MAX_CONFLICTS) {
            return yield* new ProgressBusError({
              operation: "publish",
              topic,
              cause: new Error(`Still conflicting after ${MAX_CONFLICTS} reloads`)
            })
          }
          const loaded = yield* load
          // A topic lost (expired, or Redis restarted empty) keeps this publisher's state, and its
          // numbering goes on from `highest`: a listener resuming with a seq it had gets what follows.
          current = loaded.seq === 0 && highest > 0 ? { seq: 0, state: current.state } : loaded
          return yield* attempt(event, conflicts + 1)
        })
      const handle: ProgressPublisher<E, S> = {
        publish: (event) => lock.withPermits(1)(attempt(event, 0)),
        current: Effect.sync(() => current)
      }
      return handle
    })

  const subscribe = (topic: string, options?: { readonly afterSeq?: number | undefined }) =>
    Stream.unwrapScoped(
      Effect.gen(function* () {
        // The listener is released as soon as the stream is done, not only when its consumer's scope closes.
        const scope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
        const listener = yield* Scope.extend(backend.listen(key(topic)), scope)
        const afterSeq = usableSeq(options?.afterSeq)
        let lastSeq = afterSeq ?? 0
        let done = false
        const items: Array<ProgressItem<E, S>> = []

        const eventItem = (seq: number, terminal: boolean, encoded: unknown) =>
          Effect.gen(function* () {
            lastSeq = seq
            if (terminal) done = true
            const decoded = decodeEvent(encoded)
            if (decoded._tag === "Left") return yield* skipped(topic, `event: ${problem(decoded.left)}`, seq)
            const item: ProgressEvent<E> = { _tag: "Event", topic, seq, event: decoded.right, terminal }
            items.push(item)
          })

        /** Everything after `lastSeq` from the store: buffered events, or a snapshot. */
        const catchUp = (after: number | undefined) =>
          Effect.gen(function* () {
            const result = yield* backend.read(key(topic), after).pipe(Effect.retry(readRetry))
            if (result._tag === "Snapshot") {
              items.push(yield* snapshotOf(topic, result))
              lastSeq = result.seq
              done = result.terminal
              return
            }
            for (const raw of result.messages) {
              const message = decodeMessage(raw)
              if (message._tag === "Left") {
                yield* skipped(topic, problem(message.left))
                continue
              }
              const value = message.right
              if ("cleared" in value || value.seq <= lastSeq) continue
              yield* eventItem(value.seq, value.terminal, value.event)
              if (done) return
            }
            lastSeq = Math.max(lastSeq, result.seq)
            done = result.terminal && lastSeq === result.seq
          })

        const live = Effect.gen(function* () {
          for (const signal of yield* Queue.takeBetween(listener.signals, 1, 256)) {
            if (done) break
            if (signal._tag === "Resync") {
              yield* catchUp(lastSeq)
              continue
            }
            const message = decodeMessage(signal.raw)
            if (message._tag === "Left") {
              yield* skipped(topic, problem(message.left))
              continue
            }
            const value = message.right
            if ("cleared" in value) {
              done = true
            } else if (value.seq === lastSeq + 1) {
              yield* eventItem(value.seq, value.terminal, value.event)
            } else if (value.seq > lastSeq + 1) {
              // Something was lost on the way: the store has it.
              yield* catchUp(lastSeq)
            }
            // value.seq <= lastSeq: already delivered.
          }
          if (!done && listener.takeLagged()) yield* catchUp(lastSeq)
        })

        const drain = () => Chunk.fromIterable(items.splice(0, items.length))
        yield* catchUp(afterSeq)
        const first = drain()
        const rest = Stream.repeatEffectChunkOption(
          Effect.suspend(() =>
            done
              ? Effect.zipRight(Scope.close(scope, Exit.void), Effect.fail(Option.none()))
              : live.pipe(Effect.map(drain), Effect.mapError(Option.some))
          )
        )
        return Stream.concat(Stream.fromChunk(first), rest)
      })
    )

  return {
    name: spec.name,
    publish,
    publisher,
    subscribe,
    snapshot,
    clear: (topic) => backend.clear(key(topic))
  }
}

export const makeBus = (kind: ProgressBusShape["kind"], backend: ProgressBackend): ProgressBusShape => ({
  kind,
  feed: (spec) => makeFeed(backend, spec)
})
