/**
 * The nesting limit of JSON input (REST bodies, RPC requests, WebSocket frames), checked on the
 * raw text before anything parses or decodes it: a 5 MB `[[[[…` costs one linear scan here,
 * where the schema's error formatting would recurse once per level until the stack overflows.
 */

/** Deeper than this is refused; no contract of ours nests more than a few levels. */
export const MAX_JSON_DEPTH = 64

export const JSON_TOO_DEEP_MESSAGE = `JSON nested deeper than ${MAX_JSON_DEPTH} levels`

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_ARRAY = 0x5b
const OPEN_OBJECT = 0x7b
const CLOSE_ARRAY = 0x5d
const CLOSE_OBJECT = 0x7d

/** True when `text` opens more than `max` arrays/objects at once (brackets inside strings do not count). */
export const exceedsJsonDepth = (text: string, max: number = MAX_JSON_DEPTH): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === BACKSLASH) i++
      else if (c === QUOTE) inString = false
    } else if (c === QUOTE) inString = true
    else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > max) return true
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) depth--
  }
  return false
}
