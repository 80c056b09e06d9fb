/**
 * This process's fan-out: local listeners by channel, each with its own bounded queue, sharing one
 * upstream subscription per channel (reference counted). The upstream calls (`subscribe`,
 * `unsubscribe`) are made synchronously with the bookkeeping, so they reach the connection in the
 * order the listeners came and went: an unsubscribe can never overtake a later subscribe.
 *
 * A listener whose queue is full loses the message and is marked lagged; its subscription then
 * catches up from the replay buffer. A slow listener costs only itself.
 */
import { Effect, Queue, type Scope } from "effect"

export type Signal =
  | { readonly _tag: "Message"; readonly raw: string }
  /** Messages may have been lost upstream (the connection came back): catch up from the store. */
  | { readonly _tag: "Resync" }

export interface Listener {
  readonly signals: Queue.Dequeue<Signal>
  /** Whether a signal was dropped since the last call (and resets it). */
  readonly takeLagged: () => boolean
}

export interface RouterHooks {
  /** The channel's first listener arrived; resolves when messages flow. */
  readonly subscribe: (channel: string) => Promise<void>
  /** The channel's last listener left. */
  readonly unsubscribe: (channel: string) => void
}

interface Slot {
  readonly queue: Queue.Queue<Signal>
  lagged: boolean
}

interface Entry {
  readonly slots: Set<Slot>
  readonly ready: Promise<void>
}

const RESYNC: Signal = { _tag: "Resync" }

export interface Router {
  readonly listen: (channel: string) => Effect.Effect<Listener, unknown, Scope.Scope>
  readonly dispatch: (channel: string, raw: string) => void
  /** Tells every listener to catch up (after upstream reconnected). */
  readonly resyncAll: () => void
  readonly channels: () => ReadonlyArray<string>
  readonly listeners: (channel: string) => number
}

export const makeRouter = (capacity: number, hooks: RouterHooks): Router => {
  const entries = new Map<string, Entry>()

  const offer = (slot: Slot, signal: Signal) => {
    if (!Queue.unsafeOffer(slot.queue, signal)) slot.lagged = true
  }

  const open = (channel: string): Entry => {
    const existing = entries.get(channel)
    if (existing !== undefined) return existing
    let ready: Promise<void>
    try {
      ready = hooks.subscribe(channel)
    } catch (cause) {
      ready = Promise.reject(cause instanceof Error ? cause : new Error(String(cause)))
    }
    const entry: Entry = { slots: new Set(), ready }
    // A failed subscription is forgotten so that the next listener tries again.
    ready.catch(() => {
      if (entries.get(channel) === entry) entries.delete(channel)
    })
    entries.set(channel, entry)
    return entry
  }

  const listen = (channel: string) =>
    Effect.gen(function* () {
      const queue = yield* Queue.dropping<Signal>(capacity)
      const slot: Slot = { queue, lagged: false }
      const entry = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const entry = open(channel)
          entry.slots.add(slot)
          return entry
        }),
        (entry) =>
          Effect.zipRight(
            Effect.sync(() => {
              entry.slots.delete(slot)
              if (entry.slots.size === 0 && entries.get(channel) === entry) {
                entries.delete(channel)
                hooks.unsubscribe(channel)
              }
            }),
            Queue.shutdown(queue)
          )
      )
      yield* Effect.tryPromise({ try: () => entry.ready, catch: (cause) => cause })
      const listener: Listener = {
        signals: queue,
        takeLagged: () => {
          const lagged = slot.lagged
          slot.lagged = false
          return lagged
        }
      }
      return listener
    })

  return {
    listen,
    dispatch: (channel, raw) => {
      const entry = entries.get(channel)
      if (entry === undefined) return
      const signal: Signal = { _tag: "Message", raw }
      for (const slot of entry.slots) offer(slot, signal)
    },
    resyncAll: () => {
      for (const entry of entries.values()) for (const slot of entry.slots) offer(slot, RESYNC)
    },
    channels: () => [...entries.keys()],
    listeners: (channel) => entries.get(channel)?.slots.size ?? 0
  }
}
