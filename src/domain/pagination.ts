/** Cursor pagination, newest first: `?limit=&cursor=` in, `{ items, nextCursor }` out. */
import { Schema } from "effect"
import { Token } from "./fields.ts"

export const PageParams = Schema.Struct({
  limit: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 100)), { default: () => 20 }),
  /** Opaque: the `nextCursor` of the previous page. */
  cursor: Schema.optional(Token(200))
})

export const Page = <A, I, R>(item: Schema.Schema<A, I, R>) =>
  Schema.Struct({
    items: Schema.Array(item),
    /** Null on the last page. */
    nextCursor: Schema.NullOr(Schema.String)
  })

/** An id in a path: what `cuid()` makes, bounded so hostile input is refused before any query. */
export const ResourceId = Schema.String.pipe(Schema.pattern(/^[a-z0-9]{1,64}$/i, { message: () => "Expected an id" }))
