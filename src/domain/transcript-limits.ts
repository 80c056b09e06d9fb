/**
 * The limits of a transcript, one number each for every place that writes one: what the user may
 * set when fixing a message (PATCH) and what a screenshot's read keeps of what was written in it.
 */

/** The longest text of one message, in UTF-16 code units (JavaScript's `length`, as `maxLength` counts). */
export const MAX_MESSAGE_CHARS = 2_000

/**
 * The most messages one screenshot's read keeps (a tall screenshot shows a few dozen), and the most
 * fixes one PATCH may carry: every message of a screenshot fixed at once.
 */
export const MAX_SCREENSHOT_MESSAGES = 200
