/**
 * The shape limits of JSON input (REST bodies, RPC requests, WebSocket frames), checked on the
 * raw text before anything parses or decodes it, in one linear scan:
 * - nesting: a 5 MB `[[[[…` would make the schema's error formatting recurse once per level until
 *   the stack overflows;
 * - items: 100,000 wrong array items (or unknown keys) are 100,000 issues, ~3 s of formatting and
 *   60 MB of report; no contract of ours takes more than a few hundred values.
 */

/** Deeper than this is refused; no contract of ours nests more than a few levels. */
export const MAX_JSON_DEPTH = 64
/** Array elements and object members in the whole document (a Clerk webhook has a few hundred). */
export const MAX_JSON_ITEMS = 5_000

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const OPEN_ARRAY = 0x5b
const OPEN_OBJECT = 0x7b
const CLOSE_ARRAY = 0x5d
const CLOSE_OBJECT = 0x7d

/**
 * Why `text` is refused (nested deeper than `MAX_JSON_DEPTH`, or more than `MAX_JSON_ITEMS`
 * values), or undefined. Brackets and commas inside strings do not count.
 */
export const jsonLimitExceeded = (text: string): string | undefined => {
  let depth = 0
  let items = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === BACKSLASH) i++
      else if (c === QUOTE) inString = false
    } else if (c === QUOTE) inString = true
    else if (c === COMMA) {
      if (++items >= MAX_JSON_ITEMS) return `JSON of more than ${MAX_JSON_ITEMS} items (array elements and members)`
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > MAX_JSON_DEPTH) return `JSON nested deeper than ${MAX_JSON_DEPTH} levels`
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) depth--
  }
  return undefined
}
