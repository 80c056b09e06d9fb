/**
 * Keyset pagination, newest first, on (createdAt, id): stable under inserts, no OFFSET scans.
 * The cursor is opaque to clients (base64url of the last item's key).
 */
import { HttpApiDecodeError } from "@effect/platform/HttpApiError"
import { Effect } from "effect"

export interface Keyed {
  readonly id: string
  readonly createdAt: Date
}

const encode = (row: Keyed) => Buffer.from(`${row.createdAt.toISOString()}|${row.id}`).toString("base64url")

/** The key of the last row a cursor names; none without a cursor; a cursor that does not decode is a 400 on `cursor`. */
export const cursorKey = (cursor: string | undefined): Effect.Effect<Keyed | undefined, HttpApiDecodeError> => {
  if (cursor === undefined) return Effect.succeed(undefined)
  const [iso, id] = Buffer.from(cursor, "base64url").toString("utf8").split("|")
  const createdAt = new Date(iso ?? "")
  // Only what `encode` writes: a four-digit year keeps the date within PostgreSQL's timestamp range.
  const written = iso !== undefined && /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(iso)
  if (id === undefined || !/^[a-z0-9]{1,64}$/i.test(id) || !written || Number.isNaN(createdAt.getTime())) {
    return Effect.fail(
      new HttpApiDecodeError({
        message: "Invalid cursor",
        issues: [{ _tag: "Type", path: ["cursor"], message: "Expected the nextCursor of a previous page" }]
      })
    )
  }
  return Effect.succeed({ createdAt, id })
}

/** The Prisma `where` for the rows after `cursor`. */
export const afterCursor = (cursor: string | undefined) =>
  Effect.map(cursorKey(cursor), (key) =>
    key === undefined
      ? {}
      : { OR: [{ createdAt: { lt: key.createdAt } }, { createdAt: key.createdAt, id: { lt: key.id } }] }
  )

/** Order for `afterCursor`; fetch `limit + 1` rows and hand them to `toPage`. */
export const newestFirst = [{ createdAt: "desc" as const }, { id: "desc" as const }]

export const toPage = <Row extends Keyed, Item>(
  rows: ReadonlyArray<Row>,
  limit: number,
  toItem: (row: Row) => Item
) => {
  const items = rows.slice(0, limit)
  const last = items.at(-1)
  return { items: items.map(toItem), nextCursor: rows.length > limit && last !== undefined ? encode(last) : null }
}
