/**
 * Deterministic safety, before and after generation. Input: a profile that states or implies an
 * age under 18 is refused. Output: each generated opener is checked against the policy's terms;
 * anything the check cannot clear is dropped (fail closed), never saved or shown as done.
 */
import { storable } from "../../domain/fields.ts"
import type { BlockedReason } from "../../domain/openers.ts"

/** Patterns that state or imply a minor. Deliberately broad: a false positive costs one refusal. */
const MINOR_PATTERNS: ReadonlyArray<RegExp> = [
  // "I'm 16", "16 yo", "16 y/o", "16 years old", "16yrs", "age 16", "aged 15"
  /\b(?:i'?m|i am|im)\s+(?:only\s+)?(?:1[0-7]|[1-9])\b(?!\s*(?:k|km|mi|miles|ft|cm|%|\$|h|hours|min|minutes|'|"))/i,
  /\b(?:1[0-7]|[1-9])\s*(?:yo|y\/o|y\.o\.|yrs?(?:\s+old)?|years?\s+old|year-old)\b/i,
  /\bage[ds]?\s*[:=]?\s*(?:1[0-7]|[1-9])\b/i,
  // School years that mean a minor.
  /\b(?:high|middle|junior high|secondary)\s*school(?:er)?\b(?!\s*(?:teacher|sweetheart|friend|reunion|diploma|graduate))/i,
  /\b(?:[6-9]|1[0-2])(?:st|nd|rd|th)\s+grade(?:r)?\b/i,
  /\b(?:freshman|sophomore|junior)\s+(?:in|at)\s+high\s+school\b/i,
  /\b(?:minor|underage|under\s*18|under-18|not\s+18\s+yet|almost\s+18|turning\s+18)\b/i,
  /\b(?:teen|teenager|preteen|tween)\b/i
]

export const impliesMinor = (texts: ReadonlyArray<string | null | undefined>): boolean =>
  texts.some((text) => text !== null && text !== undefined && MINOR_PATTERNS.some((pattern) => pattern.test(text)))

export type SafetyPolicy = "standard" | "strict"

/** Explicit or harassing content, refused under every policy. */
const ALWAYS: ReadonlyArray<RegExp> = [
  /\b(?:nudes?|naked|sext(?:ing)?|dick|cock|pussy|tits|boobs|cum|blowjob|anal|porn|horny|fuck(?:ing)?|slut|whore|bitch|cunt)\b/i,
  /\b(?:kill yourself|kys|ugly|fat|stupid|retard(?:ed)?|worthless|shut up)\b/i,
  /\b(?:send (?:me )?(?:a )?pics?|your address|where do you live|i know where you)\b/i
]

/** Suggestive rather than explicit: refused under the strict policy. */
const STRICT_ONLY: ReadonlyArray<RegExp> = [/\b(?:sexy|hot body|bed|lingerie|kiss(?:ing)?|undress|spicy)\b/i]

export const outputAllowed = (text: string, policy: SafetyPolicy): boolean => {
  const patterns = policy === "strict" ? [...ALWAYS, ...STRICT_ONLY] : ALWAYS
  return !patterns.some((pattern) => pattern.test(text))
}

/** Two openers are the same when they differ only by case, spacing and punctuation. */
export const normalizeOpener = (text: string) =>
  text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, " ")
    .trim()

/**
 * Numbering, bullets and quotes the model may add despite the instructions. Quotes go only when
 * they wrap the whole line: a quoted title at either end stays whole (never an unbalanced quote).
 * NUL and other control characters go, a lone surrogate becomes U+FFFD: the line is saved, and
 * PostgreSQL refuses NUL (a model writing one would otherwise fail the batch).
 */
export const cleanLine = (line: string) => {
  const text = storable(line)
    .replace(/^(?:\d{1,2}[.)]|[-*•])(?:\s+|$)/, "")
    .trim()
  if (/^["“”']*$/.test(text)) return ""
  const inner = /^["“”'](.*)["“”']$/s.exec(text)?.[1]
  return inner !== undefined && !/["“”]/.test(inner) ? inner.trim() : text
}

/**
 * Why a finished, cleaned line (an opener or a suggestion) may not be shown: longer than
 * `maxChars`, refused by the policy, or the same as one in `seen` (normalised); undefined when it may.
 */
export const lineBlockedReason = (
  text: string,
  rules: { readonly maxChars: number; readonly policy: SafetyPolicy; readonly seen: ReadonlySet<string> }
): BlockedReason | undefined =>
  text.length > rules.maxChars
    ? "too_long"
    : !outputAllowed(text, rules.policy)
      ? "unsafe"
      : rules.seen.has(normalizeOpener(text))
        ? "duplicate"
        : undefined
