/**
 * Users: the seed's loadUser (Clerk id → internal user, provisioned just in time and cached),
 * the profile, the data export, and account erasure through the registered erasure steps.
 */
import { Cache, Clock, Data, Duration, Effect, Exit, Option, Schema } from "effect"
import { toTheEnd } from "../../core/to-the-end.ts"
import { AppConfig } from "../../core/config.ts"
import { Erasure } from "../../core/erasure.ts"
import type { VerifiedToken } from "../../core/auth/token-verifier.ts"
import { RateLimiter } from "../../core/rate-limit/rate-limiter.ts"
import { EXPORT_BOUNDS, type UpdateProfile, type UserProfile } from "../../domain/users.ts"
import { NotFound, RateLimited } from "../../domain/errors.ts"
import { LanguageTag, Tone } from "../../domain/tones.ts"
import { toExport } from "./users.export.ts"
import { type ProfileFields, type User, UsersRepo } from "./users.repo.ts"

/** The token belongs to an account its owner erased: it must not be provisioned again. */
export class AccountErased extends Schema.TaggedError<AccountErased>()("AccountErased", {}) {}

export interface ResolvedUser {
  readonly id: string
  readonly clerkId: string
  /** Whether the account's erasure has started, from its tombstone when run: made once per mapping, run only when asked. */
  readonly erased: Effect.Effect<boolean>
}

/** What identifies a user and seeds its row; stable across the tokens of one user, so it keys the cache. */
class IdentityKey extends Data.Class<{
  readonly clerkId: string
  readonly email: string | undefined
  readonly firstName: string | undefined
  readonly lastName: string | undefined
}> {}

// Rows written before a schema change may hold values the contract no longer accepts.
const decodeOrNull =
  <A, I>(schema: Schema.Schema<A, I>) =>
  (value: string | null): A | null =>
    value === null ? null : Option.getOrNull(Schema.decodeUnknownOption(schema)(value))

const toneOrNull = decodeOrNull(Tone)
const languageOrNull = decodeOrNull(LanguageTag)

export const toProfile = (user: User): UserProfile => ({
  id: user.id,
  email: user.email,
  firstName: user.firstName,
  lastName: user.lastName,
  imageUrl: user.imageUrl,
  preferredLanguage: languageOrNull(user.preferredLanguage),
  defaultTone: toneOrNull(user.defaultTone),
  createdAt: user.createdAt,
  updatedAt: user.updatedAt
})

export class UsersService extends Effect.Service<UsersService>()("UsersService", {
  effect: Effect.gen(function* () {
    const repo = yield* UsersRepo
    const erasure = yield* Erasure
    const config = yield* AppConfig
    const limiter = yield* RateLimiter

    /**
     * Erases the account of `clerkId` and everything registered with the erasure mechanism.
     * The tombstone comes first, so no request provisions the account again meanwhile, then gets
     * the internal id: from then on uploads and storage writes of the user are refused. Calling
     * it again (or for an unknown account) is harmless, and finishes an erasure that failed
     * halfway even when the user row is already gone (the steps run from the tombstone).
     */
    const eraseAccount = (clerkId: string) =>
      Effect.gen(function* () {
        yield* repo.markErased(clerkId, null)
        const user = yield* repo.findByClerkId(clerkId)
        const tombstone = yield* repo.markErased(clerkId, user?.id ?? null)
        const userId = user?.id ?? tombstone?.userId ?? null
        if (userId !== null) {
          yield* erasure.run({ id: userId, clerkId })
          yield* repo.remove(userId)
          yield* Effect.logInfo("Account erased").pipe(Effect.annotateLogs("userId", userId))
        }
      })

    const resolved = (user: Pick<User, "id" | "clerkId">): ResolvedUser => ({
      id: user.id,
      clerkId: user.clerkId,
      erased: Effect.orDie(repo.isErased(user.clerkId))
    })

    const resolveUncached = (key: IdentityKey) =>
      Effect.gen(function* () {
        // The tombstone first: an account whose erasure started is refused even while its row exists.
        if (yield* repo.isErased(key.clerkId)) return yield* new AccountErased()
        const existing = yield* repo.findByClerkId(key.clerkId)
        if (existing) return resolved(existing)
        const created = yield* repo.provision(key.clerkId, {
          email: key.email ?? null,
          firstName: key.firstName ?? null,
          lastName: key.lastName ?? null
        })
        // An erasure that started meanwhile may have looked for the row before it existed: finish it.
        if (yield* repo.isErased(key.clerkId)) {
          yield* eraseAccount(key.clerkId)
          return yield* new AccountErased()
        }
        yield* Effect.logInfo("User provisioned from a token before Clerk's webhook").pipe(
          Effect.annotateLogs("userId", created.id)
        )
        return resolved(created)
      })

    // Concurrent first requests of one user share a single lookup; failures are not remembered.
    const mapping = yield* Cache.makeWith({
      capacity: 50_000,
      lookup: resolveUncached,
      timeToLive: Exit.match({
        onFailure: () => Duration.zero,
        onSuccess: () => Duration.millis(config.userCacheTtlMs)
      })
    })

    const resolve = (token: VerifiedToken) =>
      mapping.get(
        new IdentityKey({
          clerkId: token.clerkId,
          email: token.email,
          firstName: token.firstName,
          lastName: token.lastName
        })
      )

    const profile = (userId: string) =>
      repo
        .findById(userId)
        .pipe(
          Effect.flatMap((user) =>
            user === null ? Effect.fail(new NotFound({ message: "No such user" })) : Effect.succeed(toProfile(user))
          )
        )

    const updateProfile = (userId: string, patch: UpdateProfile) => {
      const fields: ProfileFields = {
        ...(patch.firstName === undefined ? {} : { firstName: patch.firstName }),
        ...(patch.lastName === undefined ? {} : { lastName: patch.lastName }),
        ...(patch.preferredLanguage === undefined ? {} : { preferredLanguage: patch.preferredLanguage }),
        ...(patch.defaultTone === undefined ? {} : { defaultTone: patch.defaultTone })
      }
      return repo
        .update(userId, fields)
        .pipe(
          Effect.flatMap((user) =>
            user === null ? Effect.fail(new NotFound({ message: "No such user" })) : Effect.succeed(toProfile(user))
          )
        )
    }

    /**
     * Everything the account holds about its owner (GDPR Art. 15/20). Counted per user against
     * RATE_LIMIT_EXPORT_USER before any read: each export reads every row of the account.
     */
    const exportData = (userId: string) =>
      Effect.gen(function* () {
        if (config.rateLimits.enabled) {
          const decision = yield* limiter.consume(config.rateLimits.exportUser, `export:user:${userId}`)
          if (!decision.allowed) {
            return yield* new RateLimited({
              message: "Too many exports: retry after the Retry-After delay",
              details: { retryAfterMs: decision.retryAfterMs }
            })
          }
        }
        const [user, matches, openers, sessions, messages, suggestions, aiUsage] = yield* repo.exportRows(
          userId,
          EXPORT_BOUNDS
        )
        if (user === null) return yield* new NotFound({ message: "No such user" })
        const exported = toExport(EXPORT_BOUNDS, new Date(yield* Clock.currentTimeMillis), toProfile(user), {
          matches,
          openers,
          sessions,
          messages,
          suggestions,
          aiUsage
        })
        yield* Effect.logInfo("Account data exported").pipe(
          Effect.annotateLogs({ userId, sessions: exported.sessions.length, truncated: exported.truncated.length })
        )
        return exported
      })

    /**
     * `eraseAccount`, then no api cache keeps the mapping. Carried out to the end once started,
     * even when the caller hangs up meanwhile: the tombstone already refuses the account's token
     * everywhere but here, so an erasure cut short would keep its rows and objects until the
     * owner thought of calling it again.
     */
    const erase = (clerkId: string) => toTheEnd(Effect.zipRight(eraseAccount(clerkId), mapping.invalidateAll))

    /** Clerk's view of a user (webhook); an erased account is not brought back. */
    const syncFromClerk = (clerkId: string, fields: ProfileFields, clerkUpdatedAt: Date) =>
      Effect.gen(function* () {
        if (yield* repo.isErased(clerkId)) return "erased" as const
        const applied = yield* repo.syncFromClerk(clerkId, fields, clerkUpdatedAt)
        // An erasure that started meanwhile may have looked for the row before this created it.
        if (yield* repo.isErased(clerkId)) {
          yield* erase(clerkId)
          return "erased" as const
        }
        return applied
      })

    return { resolve, profile, updateProfile, exportData, erase, syncFromClerk } as const
  }),
  dependencies: [UsersRepo.Default]
}) {}
