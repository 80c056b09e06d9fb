/**
 * Waiting for a state that sends no event (a row a finalizer writes, a fake's counter, a Redis
 * key, a count of handles): poll until it holds. No deadline of its own (a guess that fails slow
 * machines): the test's timeout is the guard, and a wait it interrupts logs what it was waiting
 * for and the last value it saw.
 */
import { Console, Effect } from "effect"

/** A pause on the real clock, interruptible, whatever clock the test's fiber has (a TestClock never wakes `Effect.sleep`). */
export const pause = (millis: number) =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), millis)
    return Effect.sync(() => clearTimeout(timer))
  })

/** Runs `probe` every `everyMs` until `done` holds; answers the value that did. */
export const eventually = <A, E, R>(
  probe: Effect.Effect<A, E, R>,
  done: (value: A) => boolean,
  what = "a condition",
  everyMs = 20
): Effect.Effect<A, E, R> => {
  let last: { readonly value: A } | undefined
  const poll: Effect.Effect<A, E, R> = Effect.flatMap(probe, (value) => {
    last = { value }
    return done(value) ? Effect.succeed(value) : Effect.zipRight(pause(everyMs), poll)
  })
  return poll.pipe(
    Effect.onInterrupt(() =>
      Console.error(
        `interrupted while waiting for ${what}; last seen: ${last === undefined ? "nothing yet" : JSON.stringify(last.value)}`
      )
    )
  )
}
