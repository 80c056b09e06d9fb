/**
 * The progress bus's public shapes: what a listener receives, what a feed offers, the options both
 * layers take. The `ProgressBus` tag and its layers are in `progress-bus.ts`.
 *
 * A feed is one kind of progress (e.g. `sessions`) with its event and state schemas; a topic is
 * one stream of it (e.g. a session id). Every event published on a topic gets the next `seq` of
 * that topic (1, 2, 3, …); a listener receives either a snapshot (the topic's state as of a seq)
 * or the events after the seq it already has, then live events, each seq at most once and in order.
 */
import { Duration, type Effect, type Option, Schema, type Stream } from "effect"

export class ProgressBusError extends Schema.TaggedError<ProgressBusError>()("ProgressBusError", {
  operation: Schema.String,
  topic: Schema.String,
  cause: Schema.Defect
}) {}

/** The topic's state as of `seq`: what a listener shows instead of the events up to `seq`. */
export interface ProgressSnapshot<S> {
  readonly _tag: "Snapshot"
  readonly topic: string
  /** Every event up to this seq is covered; 0 for a topic without events (new, cleared or expired). */
  readonly seq: number
  /** The last state a publisher set; none if none was set, or if it no longer decodes. */
  readonly state: Option.Option<S>
  /** The topic's last event was terminal: a subscription ends after this snapshot. */
  readonly terminal: boolean
}

export interface ProgressEvent<E> {
  readonly _tag: "Event"
  readonly topic: string
  readonly seq: number
  readonly event: E
  /** The feed's `isTerminal` held when it was published: a subscription ends after it. */
  readonly terminal: boolean
}

/**
 * What a subscription yields. A snapshot comes first when the listener has no usable seq, and
 * again mid-stream only if the listener fell further behind than the replay buffer: it replaces
 * whatever the listener had.
 */
export type ProgressItem<E, S> = ProgressSnapshot<S> | ProgressEvent<E>

export interface ProgressFeedSpec<E, EI, S, SI> {
  /** The namespace of the feed's topics in the store (`<name>:<topic>`), e.g. `sessions`. */
  readonly name: string
  readonly event: Schema.Schema<E, EI>
  readonly state: Schema.Schema<S, SI>
  /** Evaluated when publishing: a terminal event ends every subscription after it is delivered. */
  readonly isTerminal?: (event: E) => boolean
}

export interface SubscribeOptions {
  /**
   * The last seq the listener has (SSE `Last-Event-ID`): it gets exactly the events after it if the
   * replay buffer still holds them all, else a snapshot. Absent (or not a non-negative integer):
   * a snapshot.
   */
  readonly afterSeq?: number | undefined
}

export interface PublishOptions<S> {
  /** The topic's state after this event; absent: this event leaves the state as it was. */
  readonly state?: S | undefined
}

export interface ProgressReducer<E, S> {
  readonly initial: S
  readonly reduce: (state: S, event: E) => S
}

/** Publishes on one topic, keeping its state with a reducer (see `ProgressFeed.publisher`). */
export interface ProgressPublisher<E, S> {
  /** Publishes the event with `reduce(state, event)` as the new state; the event's seq. */
  readonly publish: (event: E) => Effect.Effect<number, ProgressBusError>
  /** The state and seq after the last publish of this publisher (or as loaded). */
  readonly current: Effect.Effect<{ readonly seq: number; readonly state: S }>
}

export interface ProgressFeed<E, S> {
  readonly name: string
  /** Assigns the next seq, keeps the event for replay (and `state` as the topic's state), delivers it. */
  readonly publish: (topic: string, event: E, options?: PublishOptions<S>) => Effect.Effect<number, ProgressBusError>
  /**
   * A publisher that folds every event into the state with `reducer`, starting from the topic's
   * stored state (or `initial`). Writes are conditional on the seq it last saw: if another
   * publisher wrote in between, it reloads the state and reduces again, so no update is lost.
   */
  readonly publisher: (
    topic: string,
    reducer: ProgressReducer<E, S>
  ) => Effect.Effect<ProgressPublisher<E, S>, ProgressBusError>
  /**
   * What the listener missed (events after `afterSeq`, or a snapshot), then live events, in seq
   * order without gaps or repeats. Ends after a terminal event or snapshot, or when the topic is
   * cleared. Messages that do not decode are logged and skipped.
   */
  readonly subscribe: (topic: string, options?: SubscribeOptions) => Stream.Stream<ProgressItem<E, S>, ProgressBusError>
  readonly snapshot: (topic: string) => Effect.Effect<ProgressSnapshot<S>, ProgressBusError>
  /** Deletes the topic's state and replay buffer and ends its subscriptions (idempotent). */
  readonly clear: (topic: string) => Effect.Effect<void, ProgressBusError>
}

export interface ProgressBusShape {
  readonly kind: "redis" | "memory"
  readonly feed: <E, EI, S, SI>(spec: ProgressFeedSpec<E, EI, S, SI>) => ProgressFeed<E, S>
}

export interface ProgressBusOptions {
  /** Events kept per topic for resuming with `afterSeq` (default 500). */
  readonly replayLimit?: number
  /** How long a topic is kept after its last event (default 24 hours). */
  readonly ttl?: Duration.DurationInput
  /**
   * Signals queued per local listener (default 1024). A listener that falls further behind is
   * caught up from the replay buffer (or a snapshot) instead of holding memory.
   */
  readonly listenerBuffer?: number
}

export interface ResolvedOptions {
  readonly replayLimit: number
  readonly ttlMs: number
  readonly listenerBuffer: number
}

const positiveInt = (value: number | undefined, fallback: number) =>
  value !== undefined && Number.isSafeInteger(value) && value > 0 ? value : fallback

export const resolveOptions = (options: ProgressBusOptions | undefined): ResolvedOptions => ({
  replayLimit: positiveInt(options?.replayLimit, 500),
  ttlMs: Math.max(1, Math.round(Duration.toMillis(Duration.decode(options?.ttl ?? Duration.hours(24))))),
  listenerBuffer: positiveInt(options?.listenerBuffer, 1024)
})
