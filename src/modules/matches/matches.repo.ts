/** Prisma access for matches; every query is scoped to its owner. */
import { Effect } from "effect"
import { Db, isForeignKeyViolation } from "../../core/db/db.ts"
import type { Match, Prisma } from "../../core/db/generated/client.ts"
import { afterCursor, newestFirst } from "../../core/pagination.ts"

export type { Match }

export class MatchesRepo extends Effect.Service<MatchesRepo>()("MatchesRepo", {
  effect: Effect.gen(function* () {
    const db = yield* Db
    return {
      /** The match saved; null when its user is gone (the account erased meanwhile, perhaps on another instance). */
      create: (data: Prisma.MatchUncheckedCreateInput) =>
        db
          .query("matches.create", (c): Promise<Match | null> => c.match.create({ data }))
          .pipe(
            Effect.catchIf(
              (error) => isForeignKeyViolation(error, "matches_user_id_fkey"),
              () => Effect.succeed(null)
            )
          ),
      find: (userId: string, id: string) =>
        db.query("matches.find", (c) => c.match.findFirst({ where: { id, userId } })),
      list: (userId: string, limit: number, cursor: string | undefined) =>
        Effect.flatMap(afterCursor(cursor), (after) =>
          db.query("matches.list", (c) =>
            c.match.findMany({ where: { userId, ...after }, orderBy: newestFirst, take: limit + 1 })
          )
        ),
      update: (userId: string, id: string, data: Prisma.MatchUncheckedUpdateManyInput) =>
        db.query("matches.update", async (c) => {
          const { count } = await c.match.updateMany({ where: { id, userId }, data })
          return count === 0 ? null : c.match.findFirst({ where: { id, userId } })
        }),
      remove: (userId: string, id: string) =>
        db
          .query("matches.delete", (c) => c.match.deleteMany({ where: { id, userId } }))
          .pipe(Effect.map(({ count }) => count > 0))
    } as const
  })
}) {}
