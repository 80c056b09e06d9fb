/**
 * Compares a transcript read by OCR with the messages a screenshot was drawn from, allowing
 * OCR noise: words are compared lower-cased without punctuation, one edit apart for words of
 * four letters or more, and a message counts as read when most of its words are there.
 */
import type { Transcript } from "../../../src/core/ocr/transcript.ts"
import { editDistance } from "../../../src/core/ocr/overlap.ts"
import type { ChatMessage } from "../../fixtures/chat-screenshot.ts"

const tokens = (text: string) =>
  text
    .toLowerCase()
    .split(/\s+/)
    .map((token) => token.replace(/[^\p{L}\p{N}]/gu, ""))
    .filter((token) => token !== "")

export { editDistance } from "../../../src/core/ocr/overlap.ts"

const sameWord = (expected: string, read: string) =>
  expected === read || (expected.length >= 4 && editDistance(expected, read) <= 1)

/** The share (0..1) of `expected`'s words found in `read`. */
export const wordRecall = (expected: string, read: string): number => {
  const want = tokens(expected)
  const have = tokens(read)
  if (want.length === 0) return 1
  return want.filter((word) => have.some((candidate) => sameWord(word, candidate))).length / want.length
}

/**
 * Problems found (none when every expected message was read, in order, with its sender, and
 * at most `extra` messages were read that the screenshot does not hold). Read by local OCR, the
 * expected `system` lines are chrome: they must not be read as messages at all.
 */
export const transcriptProblems = (
  transcript: Transcript,
  expected: ReadonlyArray<ChatMessage>,
  options: { readonly minRecall?: number; readonly extra?: number } = {}
): ReadonlyArray<string> => {
  const minRecall = options.minRecall ?? 0.8
  const problems: Array<string> = []
  // Local OCR takes centred system lines (dates, notices) for chrome: never messages.
  const local = transcript.engine === "local-ocr"
  const drawn = local ? expected.filter((message) => message.sender !== "system") : expected
  if (local) {
    for (const chrome of expected.filter((message) => message.sender === "system")) {
      const read = transcript.messages.find((message) => wordRecall(chrome.text, message.text) >= minRecall)
      if (read !== undefined) problems.push(`system line read as a message: "${read.text}"`)
    }
  }
  let cursor = 0
  for (const message of drawn) {
    const index = transcript.messages.findIndex(
      (read, position) => position >= cursor && wordRecall(message.text, read.text) >= minRecall
    )
    const read = transcript.messages[index]
    if (read === undefined) {
      problems.push(`not read: ${message.sender} "${message.text}"`)
      continue
    }
    if (read.sender !== message.sender) {
      problems.push(`"${message.text}" attributed to ${read.sender}, expected ${message.sender}`)
    }
    cursor = index + 1
  }
  const extra = transcript.messages.length - drawn.length
  if (extra > (options.extra ?? 0)) {
    problems.push(`${extra} message(s) more than drawn: ${JSON.stringify(transcript.messages.map((m) => m.text))}`)
  }
  return problems
}
