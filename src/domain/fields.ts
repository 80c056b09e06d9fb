/** Field shapes shared by the contracts. */
import { Schema } from "effect"

/** Trimmed text of 1 to `max` characters. */
export const Text = (max: number) => Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(max))
