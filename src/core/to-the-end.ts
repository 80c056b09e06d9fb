/**
 * Work that must not stop half-way because its caller went away (a client hanging up mid-erasure).
 */
import { Effect, Fiber } from "effect"

/**
 * Runs `self` to its end even when the caller is interrupted meanwhile: on a fiber of its own,
 * joined (the caller still gets its result or failure). Unlike `Effect.uninterruptible`, `self`
 * stays interruptible inside, so its own timeouts still cut what they bound (a wait for a running
 * job to stop, say); only the caller's interruption no longer reaches it.
 */
export const toTheEnd = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.forkDaemon(self), Fiber.join)
