/** Prisma access for openers; every query is scoped to its owner. */
import { Effect } from "effect"
import { Db, isForeignKeyViolation } from "../../core/db/db.ts"
import type { Opener, Prisma } from "../../core/db/generated/client.ts"
import { afterCursor, newestFirst } from "../../core/pagination.ts"

export type { Opener }

/**
 * The foreign keys of an opener (prisma/migrations): its match deleted, or its user erased, while
 * its generation writes. Which of the two PostgreSQL reports when both rows are gone is its own
 * choice: the caller tells them apart by the tombstone.
 */
const GONE_FOREIGN_KEYS = ["magic_openers_match_id_fkey", "magic_openers_user_id_fkey"]

export class OpenersRepo extends Effect.Service<OpenersRepo>()("OpenersRepo", {
  effect: Effect.gen(function* () {
    const db = yield* Db
    return {
      /**
       * The opener saved; null when its match or its user is gone (the match deleted, the account
       * erased meanwhile: a foreign key refused the row), or when the account's erasure has started
       * (its tombstone is written; its rows are about to go): a generation that goes on meanwhile
       * (let in by a token mapped before) adds nothing for it and ends as its account is refused.
       */
      create: (data: Prisma.OpenerUncheckedCreateInput) =>
        db
          .query("openers.create", async (c): Promise<Opener | null> => {
            const erasing = await c.erasedAccount.findUnique({
              where: { userId: data.userId },
              select: { userId: true }
            })
            return erasing === null ? c.opener.create({ data }) : null
          })
          .pipe(
            Effect.catchIf(
              (error) => GONE_FOREIGN_KEYS.some((constraint) => isForeignKeyViolation(error, constraint)),
              () => Effect.succeed(null)
            )
          ),
      find: (userId: string, id: string) =>
        db.query("openers.find", (c) => c.opener.findFirst({ where: { id, userId } })),
      list: (userId: string, matchId: string | undefined, limit: number, cursor: string | undefined) =>
        Effect.flatMap(afterCursor(cursor), (after) =>
          db.query("openers.list", (c) =>
            c.opener.findMany({
              where: { userId, ...(matchId === undefined ? {} : { matchId }), ...after },
              orderBy: newestFirst,
              take: limit + 1
            })
          )
        ),
      setFeedback: (
        userId: string,
        id: string,
        data: {
          readonly feedback: string | null
          readonly dislikeReason: string | null
          readonly feedbackAt: Date | null
        }
      ) =>
        db.query("openers.feedback", async (c) => {
          const { count } = await c.opener.updateMany({ where: { id, userId }, data })
          return count === 0 ? null : c.opener.findFirst({ where: { id, userId } })
        }),
      /** The openers that shape the next prompt: the user's liked and disliked ones, this match's previous ones. */
      history: (userId: string, matchId: string | undefined) =>
        db.query("openers.history", async (c) => {
          const [liked, disliked, previous] = await Promise.all([
            c.opener.findMany({ where: { userId, feedback: "liked" }, orderBy: { feedbackAt: "desc" }, take: 5 }),
            c.opener.findMany({ where: { userId, feedback: "disliked" }, orderBy: { feedbackAt: "desc" }, take: 5 }),
            matchId === undefined
              ? Promise.resolve([])
              : c.opener.findMany({ where: { userId, matchId }, orderBy: { createdAt: "desc" }, take: 50 })
          ])
          return { liked, disliked, previous }
        })
    } as const
  })
}) {}
