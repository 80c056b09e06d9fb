/**
 * Field shapes shared by the contracts: every string that crosses the boundary (REST bodies,
 * paths and queries, RPC payloads, WebSocket frames) is one of these. PostgreSQL refuses NUL
 * and UTF-8 cannot encode a lone surrogate (Node would write U+FFFD instead), so such input is
 * a 400 naming the field, never a 500 or a silently mangled row.
 */
import { Schema } from "effect"

// With the `u` flag a lone surrogate is its own code point of category Cs (a pair is one astral code point).
const LONE_SURROGATE = /\p{Cs}/u
// C0 controls, DEL and C1 controls (U+0080–U+009F, NEL among them), and the Unicode line and
// paragraph separators; \t \n \r and the separators are allowed in multi-line text only (finding
// them is the point here).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001F\u007F-\u009F\u2028\u2029]/
// eslint-disable-next-line no-control-regex
const CONTROL_BUT_LINES = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/

/**
 * Text the server did not get from the client's own typing but must store all the same (signed
 * Clerk claims and webhooks, what an AI model wrote): made storable rather than refused, lone
 * surrogates as U+FFFD, control characters dropped (multi-line: but \t, \n and \r), trimmed.
 */
export const storable = (s: string, options: { readonly multiline?: boolean } = {}): string =>
  s
    .replace(/\p{Cs}/gu, "\uFFFD")
    .replace(new RegExp((options.multiline === true ? CONTROL_BUT_LINES : CONTROL).source, "g"), "")
    .trim()

let graphemes: Intl.Segmenter | undefined

/**
 * The longest prefix of `s` of at most `max` UTF-16 code units (JavaScript's `length`) that ends on a
 * grapheme boundary: a flag, a family emoji, a letter and its accents are kept whole or left out,
 * never cut in two (a surrogate pair least of all). Only when the first grapheme alone is longer than
 * `max` (a letter under thousands of accents) is it cut, between two code points.
 */
const prefixWithin = (s: string, max: number): string => {
  if (s.length <= max) return s
  if (max < 1) return ""
  // Made on first use: a client that bundles this module may run where Intl.Segmenter is missing.
  graphemes ??= new Intl.Segmenter(undefined, { granularity: "grapheme" })
  let end = 0
  // Lazily segmented: the work is in proportion to `max`, not to the length of `s`.
  for (const { index, segment } of graphemes.segment(s)) {
    if (index + segment.length > max) break
    end = index + segment.length
  }
  if (end > 0) return s.slice(0, end)
  const pairCut = /[\uD800-\uDBFF]/.test(s.charAt(max - 1))
  return s.slice(0, pairCut ? max - 1 : max)
}

/** `storable`, capped at `max` UTF-16 code units, cut between graphemes (see `prefixWithin`), trimmed. */
export const storableText = (s: string, max: number, options: { readonly multiline?: boolean } = {}): string =>
  prefixWithin(storable(s, options), max).trimEnd()

const wellFormed = (s: string) => !LONE_SURROGATE.test(s) || "Expected well-formed Unicode (no lone surrogate)"

/** A string of well-formed Unicode without control characters (multi-line: but \t, \n and \r). */
export const PlainString = (options: { readonly multiline?: boolean } = {}) => {
  const control = options.multiline === true ? CONTROL_BUT_LINES : CONTROL
  const what = options.multiline === true ? "NUL or control characters" : "NUL, line breaks or control characters"
  return Schema.String.pipe(
    Schema.filter((s) => (control.test(s) ? `Expected text without ${what}` : wellFormed(s)), {
      jsonSchema: {}
    })
  )
}

const lengthOf = (value: unknown) => (typeof value === "string" ? value.length : "another value")

/** Trimmed text of 1 (`allowEmpty`: 0) to `max` characters: a `PlainString`, trimmed. */
export const Text = (max: number, options: { readonly multiline?: boolean; readonly allowEmpty?: boolean } = {}) =>
  Schema.compose(PlainString(options), Schema.Trim).pipe(
    // Messages without the value: the default one quotes it, all 8 MB of it.
    Schema.minLength(options.allowEmpty === true ? 0 : 1, { message: () => "Expected at least 1 character" }),
    Schema.maxLength(max, { message: (issue) => `Expected at most ${max} characters, got ${lengthOf(issue.actual)}` }),
    // The document shows the bounds (a refinement of a transformation would otherwise show none).
    Schema.annotations({
      jsonSchema: { type: "string", minLength: options.allowEmpty === true ? 0 : 1, maxLength: max }
    })
  )

/** Multi-line text (bios, notes, reasons, messages): newlines and tabs allowed. */
export const LongText = (max: number, options: { readonly allowEmpty?: boolean } = {}) =>
  Text(max, { ...options, multiline: true })

/**
 * Machine strings (tokens, request ids, cursors, media types): printable ASCII only, so no NUL, no
 * surrogate and nothing to trim; 1 to `max` characters.
 */
export const Token = (max: number) =>
  Schema.String.pipe(
    Schema.maxLength(max),
    Schema.pattern(/^[\x21-\x7E]+$/, { message: () => `Expected 1 to ${max} printable ASCII characters` })
  )
