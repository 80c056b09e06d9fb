/**
 * Account erasure as a mechanism: each module registers what it owns (its stored objects, queued
 * jobs, progress state, rows that do not cascade) and one call erases all of it. Steps must be
 * idempotent: a failed erasure is retried as a whole.
 */
import { Effect, Layer, Schema } from "effect"

export class ErasureFailed extends Schema.TaggedError<ErasureFailed>()("ErasureFailed", {
  step: Schema.String,
  cause: Schema.Defect
}) {}

export interface ErasedUser {
  readonly id: string
  readonly clerkId: string
}

export interface ErasureStep {
  /** Shown in logs: what this step erases, never whose. */
  readonly name: string
  readonly erase: (user: ErasedUser) => Effect.Effect<void, unknown>
}

export class Erasure extends Effect.Service<Erasure>()("Erasure", {
  sync: () => {
    const steps: Array<ErasureStep> = []
    return {
      register: (step: ErasureStep) => Effect.sync(() => void steps.push(step)),
      /** Runs every registered step in registration order; the first failure stops it. */
      run: (user: ErasedUser) =>
        Effect.forEach(
          steps,
          (step) =>
            step.erase(user).pipe(
              Effect.mapError((cause) => new ErasureFailed({ step: step.name, cause })),
              Effect.withLogSpan(`erase.${step.name}`)
            ),
          { discard: true }
        )
    }
  }
}) {
  /** A layer that registers `step` when the application is built. */
  static register(step: ErasureStep) {
    return Layer.effectDiscard(Effect.flatMap(Erasure, (erasure) => erasure.register(step)))
  }
}
