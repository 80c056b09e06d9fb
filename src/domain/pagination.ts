/** Cursor pagination, newest first: `?limit=&cursor=` in, `{ items, nextCursor }` out. */
import { Schema } from "effect"
import { Token } from "./fields.ts"

const LIMIT = { minimum: 1, maximum: 100, default: 20 } as const

/**
 * The query string carries text, so the server decodes `limit` from a string; the document must
 * still say integer with its bounds, or a generated client refuses a number and a mock lets
 * `limit=1000` through. The `jsonSchema` annotation overrides what the generator would derive
 * from the encoded (string) side.
 */
const Limit = Schema.compose(
  // Digits only: `Number()` would read 0x10, 1e1, +5 and " 5" too.
  Schema.String.pipe(
    Schema.pattern(/^[0-9]+$/, {
      message: (issue) => `Expected an integer, actual ${String(issue.actual).slice(0, 20)}`
    })
  ),
  Schema.NumberFromString
)
  .pipe(Schema.int(), Schema.between(LIMIT.minimum, LIMIT.maximum))
  .annotations({ jsonSchema: { type: "integer", ...LIMIT } })

/** A page's size when the request gives none. */
export const DEFAULT_PAGE_LIMIT = LIMIT.default

export const PageParams = Schema.Struct({
  /**
   * Optional on both sides (the handlers use DEFAULT_PAGE_LIMIT): with a decoding default the
   * typed client (`HttpApiClient`, which takes the decoded side) would have to send it.
   */
  limit: Schema.optional(Limit),
  /** Opaque: the `nextCursor` of the previous page. */
  cursor: Schema.optional(Token(200))
})

export const Page = <A, I, R>(item: Schema.Schema<A, I, R>) =>
  Schema.Struct({
    items: Schema.Array(item),
    /** Null on the last page. */
    nextCursor: Schema.NullOr(Schema.String)
  })

/**
 * An id in a path: what `cuid()` makes, bounded so hostile input is refused before any query.
 * Both cases, without a flag: the document's pattern (flags are not carried) must say the same.
 */
export const ResourceId = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9]{1,64}$/, { message: () => "Expected an id" }))
