/**
 * Account erasure as a mechanism: each module registers what it owns (its stored objects, queued
 * jobs, progress state, rows that do not cascade) and one call erases all of it. Steps must be
 * idempotent: a failed erasure is retried as a whole.
 *
 * The tombstone (`erased_accounts`: a hash of the Clerk id, the internal id, the time) is written
 * before any step runs and kept after the user row is gone, because erasure cannot be instant:
 * writes that were already authorised (a cached token mapping, an upload URL signed before, a
 * running job) must be refused or swept from the moment it starts, a retried erasure must know
 * whose prefix to empty after the row is gone, and the sweep must know which prefixes to empty
 * of what lands later. It holds nothing about the person.
 */
import { Effect, Layer, Schema } from "effect"
import { accountErased, type Unauthorized } from "../domain/errors.ts"
import { Db, DbError, isForeignKeyViolation } from "./db/db.ts"

export class ErasureFailed extends Schema.TaggedError<ErasureFailed>()("ErasureFailed", {
  step: Schema.String,
  cause: Schema.Defect
}) {}

/**
 * A write that `constraint`, the foreign key of its user, refused: the account was erased after
 * the request was let in (its erasure ran meanwhile, or on another instance whose tombstone this
 * one's cached token mapping has not seen). It fails as the account's requests are now refused,
 * `account-erased`, rather than as an internal error.
 */
export const refusingErased =
  (constraint: string) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | Unauthorized, R> =>
    Effect.catchIf(
      self,
      (error) => error instanceof DbError && isForeignKeyViolation(error, constraint),
      () => Effect.fail(accountErased())
    )

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

/** Reads the erasure tombstones by internal user id (written by the users module). */
export class Tombstones extends Effect.Service<Tombstones>()("Tombstones", {
  effect: Effect.gen(function* () {
    const db = yield* Db
    /** True from the moment the user's erasure started. */
    const isErased = (userId: string) =>
      db
        .query("erasedAccounts.findByUser", (c) => c.erasedAccount.findUnique({ where: { userId } }))
        .pipe(Effect.map((row) => row !== null))
    return {
      isErased,
      /**
       * For a lookup or write of the user's that found nothing: `missing`, unless the user's
       * erasure has started (on this instance or another, after the request was let in); then the
       * request ends as its start would now be refused, `account-erased`. The tombstone is read
       * only then, never on the way of a request that finds what it looks for.
       */
      missingUnlessErased: <E>(userId: string, missing: E): Effect.Effect<never, E | Unauthorized> =>
        Effect.flatMap(Effect.orDie(isErased(userId)), (erased) => Effect.fail(erased ? accountErased() : missing)),
      /** The users whose erasure started at `since` or later. */
      erasedSince: (since: Date) =>
        db
          .query("erasedAccounts.since", (c) =>
            c.erasedAccount.findMany({
              where: { erasedAt: { gte: since }, userId: { not: null } },
              select: { userId: true }
            })
          )
          .pipe(Effect.map((rows) => rows.flatMap((row) => (row.userId === null ? [] : [row.userId]))))
    } as const
  })
}) {}
