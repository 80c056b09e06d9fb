/** Prisma access for users, erased-account tombstones and the mapping Clerk id → internal id. */
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { Db, isRecordNotFound, isTransactionConflict, isUniqueViolation, queryWith } from "../../core/db/db.ts"
import { storableText } from "../../domain/fields.ts"
import type { User } from "../../core/db/generated/client.ts"
import type { ExportKind } from "../../domain/users.ts"

export type { User }

export interface ProfileFields {
  readonly email?: string | null
  readonly firstName?: string | null
  readonly lastName?: string | null
  readonly imageUrl?: string | null
  readonly preferredLanguage?: string | null
  readonly defaultTone?: string | null
}

/**
 * Fields from signed sources (token claims, Clerk's webhooks) stored as text PostgreSQL accepts,
 * the email in lower case whichever source it comes from: one address is one value on the unique
 * index (a token's `Ada@Example.com` and a webhook's `ada@example.com` are not two accounts' emails).
 */
const storable = (profile: ProfileFields): ProfileFields =>
  Object.fromEntries(
    Object.entries(profile).map(([field, value]) => [
      field,
      typeof value === "string" ? storableText(field === "email" ? value.toLowerCase() : value, 512) : value
    ])
  )

/** Tombstones keep a hash, not the Clerk id itself. */
export const clerkIdHash = (clerkId: string) => createHash("sha256").update(clerkId).digest("hex")

export class UsersRepo extends Effect.Service<UsersRepo>()("UsersRepo", {
  effect: Effect.gen(function* () {
    const db = yield* Db

    const findByClerkId = (clerkId: string) =>
      db.query("users.findByClerkId", (c) => c.user.findUnique({ where: { clerkId } }))

    const findById = (id: string) => db.query("users.findById", (c) => c.user.findUnique({ where: { id } }))

    /**
     * Creates the user if absent (one row even under concurrent first requests: a native
     * INSERT … ON CONFLICT). An email already held by another account is left out, not fought over.
     */
    const provision = (clerkId: string, claimed: ProfileFields) => {
      const profile = storable(claimed)
      const upsert = (fields: ProfileFields) =>
        db.query("users.provision", (c) =>
          c.user.upsert({ where: { clerkId }, create: { clerkId, ...fields }, update: {} })
        )
      return upsert(profile).pipe(
        Effect.catchIf(
          (error) => isUniqueViolation(error) && profile.email != null,
          () => upsert({ ...profile, email: null })
        )
      )
    }

    /** The row as updated, or null when it is gone (its account erased meanwhile, perhaps on another instance). */
    const update = (id: string, fields: ProfileFields) =>
      db
        .query("users.update", (c): Promise<User | null> => c.user.update({ where: { id }, data: fields }))
        .pipe(Effect.catchIf(isRecordNotFound, () => Effect.succeed(null)))

    /**
     * Applies Clerk's view of the user (webhook), unless an equal or newer one was applied
     * already, also when deliveries of one user land at once (Svix sends them concurrently): the
     * row is claimed with its newer `clerkUpdatedAt` first (a conditional update, which locks
     * it), and only then written. The email moves to this account if another row still holds it;
     * two accounts given one email at once collide on its unique index (or, swapping emails,
     * deadlock on each other's rows): the loser tries again, and then takes it as Clerk says.
     */
    const syncFromClerk = (clerkId: string, delivered: ProfileFields, clerkUpdatedAt: Date) => {
      const profile = storable(delivered)
      const older = { clerkId, OR: [{ clerkUpdatedAt: null }, { clerkUpdatedAt: { lt: clerkUpdatedAt } }] }
      const attempt = db.transaction("users.syncFromClerk", (tx) =>
        Effect.gen(function* () {
          const claim = queryWith(tx, "users.syncFromClerk.claim", (c) =>
            c.user.updateMany({ where: older, data: { clerkUpdatedAt } })
          )
          let claimed = (yield* claim).count > 0
          if (!claimed) {
            // No row, or a newer one. An insert that finds a row created meanwhile (a token's
            // first request, a concurrent delivery) waits for it: the claim then decides.
            const created = yield* queryWith(tx, "users.syncFromClerk.create", (c) =>
              c.user.createMany({ data: [{ clerkId, clerkUpdatedAt }], skipDuplicates: true })
            )
            claimed = created.count > 0 || (yield* claim).count > 0
          }
          if (!claimed) return "stale" as const
          if (profile.email != null) {
            const email = profile.email
            yield* queryWith(tx, "users.syncFromClerk.release", (c) =>
              c.user.updateMany({ where: { email, NOT: { clerkId } }, data: { email: null } })
            )
          }
          yield* queryWith(tx, "users.syncFromClerk.apply", (c) => c.user.update({ where: { clerkId }, data: profile }))
          return "applied" as const
        })
      )
      return attempt.pipe(
        Effect.retry({ while: (error) => isUniqueViolation(error) || isTransactionConflict(error), times: 5 })
      )
    }

    const remove = (id: string) => db.query("users.delete", (c) => c.user.deleteMany({ where: { id } }))

    const isErased = (clerkId: string) =>
      db
        .query("erasedAccounts.find", (c) =>
          c.erasedAccount.findUnique({ where: { clerkIdHash: clerkIdHash(clerkId) } })
        )
        .pipe(Effect.map((row) => row !== null))

    /**
     * The tombstone of `clerkId`'s erasure (kept if one exists), with the internal id once known:
     * the row as it is afterwards.
     */
    const markErased = (clerkId: string, userId: string | null) =>
      db.query("erasedAccounts.upsert", async (c) => {
        const hash = clerkIdHash(clerkId)
        await c.erasedAccount.createMany({ data: [{ clerkIdHash: hash, userId }], skipDuplicates: true })
        if (userId !== null) {
          await c.erasedAccount.updateMany({ where: { clerkIdHash: hash, userId: null }, data: { userId } })
        }
        return c.erasedAccount.findUnique({ where: { clerkIdHash: hash } })
      })

    /**
     * Everything an export holds, one query per table (no query per row), newest first, each
     * bounded (`take` one past the bound tells a cut kind). One transaction at REPEATABLE READ:
     * a consistent snapshot, no message without its session.
     */
    const exportRows = (userId: string, bounds: Readonly<Record<ExportKind, number>>) =>
      db.query("users.exportRows", (c) =>
        c.$transaction(
          [
            c.user.findUnique({ where: { id: userId } }),
            c.match.findMany({
              where: { userId },
              orderBy: [{ createdAt: "desc" }, { id: "desc" }],
              take: bounds.matches + 1
            }),
            c.opener.findMany({
              where: { userId },
              orderBy: [{ createdAt: "desc" }, { id: "desc" }],
              take: bounds.openers + 1
            }),
            c.session.findMany({
              where: { userId },
              orderBy: [{ createdAt: "desc" }, { id: "desc" }],
              take: bounds.sessions + 1,
              include: { _count: { select: { images: true } } }
            }),
            c.transcriptMessage.findMany({
              where: { session: { userId } },
              orderBy: [{ createdAt: "desc" }, { sessionId: "asc" }, { position: "asc" }],
              take: bounds.transcriptMessages + 1
            }),
            c.suggestion.findMany({
              where: { session: { userId } },
              orderBy: [{ createdAt: "desc" }, { sessionId: "asc" }, { batch: "asc" }, { position: "asc" }],
              take: bounds.suggestions + 1
            }),
            c.aiCall.findMany({
              where: { userId },
              orderBy: [{ createdAt: "desc" }, { id: "desc" }],
              take: bounds.aiUsage + 1,
              // The ledger row without anything else (no prompt is stored, and none is read).
              select: {
                feature: true,
                provider: true,
                model: true,
                inputTokens: true,
                outputTokens: true,
                costMicros: true,
                latencyMs: true,
                outcome: true,
                createdAt: true
              }
            })
          ],
          { isolationLevel: "RepeatableRead" }
        )
      )

    return {
      findByClerkId,
      findById,
      provision,
      update,
      syncFromClerk,
      remove,
      isErased,
      markErased,
      exportRows
    } as const
  })
}) {}
