/**
 * What a progress store must provide (Redis, or this process's memory), in encoded form: JSON
 * strings in, JSON strings out. The typed feeds and the no-gap/no-repeat logic on top of it are
 * shared (`feed.ts`), so both layers behave the same.
 *
 * A store keeps per topic: the last seq, the last state set (JSON), whether the last event was
 * terminal, and the last `replayLimit` messages. A message is the JSON text
 * `{"seq":n,"terminal":b,"event":…}`, the same in the replay buffer and on the wire, or
 * `{"cleared":true}` when the topic is cleared.
 */
import type { Effect, Scope } from "effect"
import type { ProgressBusError } from "./model.ts"
import type { Listener } from "./router.ts"

export interface PublishRequest {
  readonly topic: string
  /** The encoded event, as JSON. */
  readonly event: string
  /** The encoded state after the event, as JSON; undefined leaves the stored state. */
  readonly state: string | undefined
  readonly terminal: boolean
  /** Publish only if the topic's seq is still this one (a reducer's optimistic write). */
  readonly expectSeq: number | undefined
  /**
   * The seq to number on from when the topic's is below it: a publisher that saw its topic lost
   * (expired, or Redis restarted empty) goes on from its own last seq, so a listener's `afterSeq`
   * never names an event of another numbering.
   */
  readonly floorSeq?: number | undefined
}

/**
 * One atomic read: the messages after `afterSeq` when the replay buffer holds all of them, or
 * else the state with the seq it stands for.
 */
export type ReadResult =
  | {
      readonly _tag: "Events"
      readonly seq: number
      readonly terminal: boolean
      /** Messages with seq in (afterSeq, seq], in order. */
      readonly messages: ReadonlyArray<string>
    }
  | { readonly _tag: "Snapshot"; readonly seq: number; readonly terminal: boolean; readonly state: string | undefined }

export interface ProgressBackend {
  /** Atomically: next seq, state, replay buffer, expiry, delivery. "conflict" if `expectSeq` was stale. */
  readonly publish: (request: PublishRequest) => Effect.Effect<number | "conflict", ProgressBusError>
  readonly read: (topic: string, afterSeq: number | undefined) => Effect.Effect<ReadResult, ProgressBusError>
  /**
   * Registers a local listener; when this succeeds, every message published from now on reaches
   * it (or marks it lagged). Released with the scope.
   */
  readonly listen: (topic: string) => Effect.Effect<Listener, ProgressBusError, Scope.Scope>
  readonly clear: (topic: string) => Effect.Effect<void, ProgressBusError>
}

export const eventMessage = (seq: number, terminal: boolean, event: string) =>
  `{"seq":${seq},"terminal":${terminal},"event":${event}}`

export const CLEARED_MESSAGE = '{"cleared":true}'

export interface StoredTopic {
  readonly seq: number
  readonly state: string | undefined
  readonly terminal: boolean
  /** The replay buffer, oldest first. */
  readonly log: ReadonlyArray<{ readonly seq: number; readonly message: string }>
}

/**
 * The read rule, shared by the memory store and mirrored by the Redis script: events when the
 * listener's seq is known and every later event is still buffered, else a snapshot (also when
 * `afterSeq` is ahead of the topic: the topic was cleared or expired since).
 */
export const readStored = (topic: StoredTopic | undefined, afterSeq: number | undefined): ReadResult => {
  const seq = topic?.seq ?? 0
  const terminal = topic?.terminal ?? false
  if (afterSeq !== undefined && afterSeq <= seq) {
    if (afterSeq === seq) return { _tag: "Events", seq, terminal, messages: [] }
    const oldest = topic?.log[0]?.seq
    if (topic !== undefined && oldest !== undefined && oldest <= afterSeq + 1) {
      return {
        _tag: "Events",
        seq,
        terminal,
        messages: topic.log.filter((entry) => entry.seq > afterSeq).map((entry) => entry.message)
      }
    }
  }
  return { _tag: "Snapshot", seq, terminal, state: topic?.state }
}

/** A listener's afterSeq when it is usable: a non-negative safe integer. */
export const usableSeq = (afterSeq: number | undefined) =>
  afterSeq !== undefined && Number.isSafeInteger(afterSeq) && afterSeq >= 0 ? afterSeq : undefined
