/** The tones a user can ask for, shared by profiles, openers and session suggestions. */
import { Schema } from "effect"

export const TONES = ["playful", "flirty", "witty", "sincere", "bold"] as const

export const Tone = Schema.Literal(...TONES).annotations({
  identifier: "Tone",
  description: TONES.join(", "),
  // One issue naming the set, instead of one per literal.
  message: () => ({ message: `Expected one of ${TONES.join(", ")}`, override: true })
})
export type Tone = typeof Tone.Type

/** A BCP 47 language tag such as `en`, `fr-CA` or `zh-Hant-TW` (shape only, not a registry lookup). */
export const LanguageTag = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, {
    message: () => "Expected a BCP 47 language tag, e.g. en or fr-CA"
  }),
  Schema.maxLength(35)
).annotations({ identifier: "LanguageTag", examples: ["en", "fr-CA"] })
