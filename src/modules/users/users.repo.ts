/** Prisma access for users, erased-account tombstones and the mapping Clerk id → internal id. */
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { Db, isUniqueViolation } from "../../core/db/db.ts"
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

/** Fields from signed sources (token claims, Clerk's webhooks) stored as text PostgreSQL accepts. */
const storable = (profile: ProfileFields): ProfileFields =>
  Object.fromEntries(
    Object.entries(profile).map(([field, value]) => [
      field,
      typeof value === "string" ? storableText(value, 512) : value
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

    const update = (id: string, fields: ProfileFields) =>
      db.query("users.update", (c) => c.user.update({ where: { id }, data: fields }))

    /**
     * Applies Clerk's view of the user (webhook), unless an equal or newer one was applied
     * already. The email moves to this account if another row still holds it.
     */
    const syncFromClerk = (clerkId: string, delivered: ProfileFields, clerkUpdatedAt: Date) =>
      db.query("users.syncFromClerk", async (c) => {
        const profile = storable(delivered)
        const existing = await c.user.findUnique({ where: { clerkId } })
        if (existing?.clerkUpdatedAt && existing.clerkUpdatedAt >= clerkUpdatedAt) return "stale" as const
        const release =
          profile.email == null
            ? []
            : [c.user.updateMany({ where: { email: profile.email, NOT: { clerkId } }, data: { email: null } })]
        await c.$transaction([
          ...release,
          c.user.upsert({
            where: { clerkId },
            create: { clerkId, ...profile, clerkUpdatedAt },
            update: { ...profile, clerkUpdatedAt }
          })
        ])
        return "applied" as const
      })

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
