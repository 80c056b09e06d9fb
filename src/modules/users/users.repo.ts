/** Prisma access for users, erased-account tombstones and the mapping Clerk id → internal id. */
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { Db, isUniqueViolation } from "../../core/db/db.ts"
import type { User } from "../../core/db/generated/client.ts"

export type { User }

export interface ProfileFields {
  readonly email?: string | null
  readonly firstName?: string | null
  readonly lastName?: string | null
  readonly imageUrl?: string | null
  readonly preferredLanguage?: string | null
  readonly defaultTone?: string | null
}

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
    const provision = (clerkId: string, profile: ProfileFields) => {
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
    const syncFromClerk = (clerkId: string, profile: ProfileFields, clerkUpdatedAt: Date) =>
      db.query("users.syncFromClerk", async (c) => {
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

    return {
      findByClerkId,
      findById,
      provision,
      update,
      syncFromClerk,
      remove,
      isErased,
      markErased
    } as const
  })
}) {}
