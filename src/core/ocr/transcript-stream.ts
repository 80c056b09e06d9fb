/**
 * The messages of a vision answer while it is being written. The answer is the JSON text of a
 * `VisionTranscript` arriving in pieces; each element of its top-level `messages` array (a line,
 * or an object) is handed over as soon as its closing quote (or brace) arrives, so the app can show the first lines of the chat about
 * half a second before the whole answer is in. What comes out is provisional: the whole answer,
 * decoded by the strategy, is the transcript. An element that does not decode as a `VisionMessage`
 * is skipped (the whole answer will fail to decode too, and the read falls back).
 *
 * One pass over the characters (strings and escapes tracked, so braces and quotes inside a
 * message's text count for nothing; outside any object, in a code fence or prose around the answer,
 * only a `{` counts): the work is linear in the answer, whatever the size of the pieces.
 */
import { Option, Schema } from "effect"
import { VisionLine, VisionMessage } from "./transcript.ts"

export interface MessageScanner {
  /** Feeds the next piece of the answer; the messages it completed, in order. */
  readonly push: (piece: string) => ReadonlyArray<VisionMessage>
  /**
   * Whether the answer so far has a second top-level `messages` array. JSON.parse keeps the last
   * one, so the messages handed over from the first are not the transcript's: such an answer is not
   * to be trusted as a transcript.
   */
  readonly ambiguous: () => boolean
}

type Container = "object" | "array"

const decodeMessage = Schema.decodeUnknownOption(Schema.parseJson(VisionMessage))
const decodeLine = Schema.decodeUnknownOption(Schema.parseJson(VisionLine))
const decodeKey = Schema.decodeUnknownOption(Schema.parseJson(Schema.String))

export const makeMessageScanner = (): MessageScanner => {
  let text = ""
  let scanned = 0
  const stack: Array<Container> = []
  let inString = false
  let escaped = false
  let stringStart = -1
  // In an object, the next string is a key (after `{` or `,`), not a value.
  let expectKey = false
  let stringIsKey = false
  let rootKey: string | undefined
  // The depth of the `messages` array's elements while inside it; the start of the element being read.
  let elementDepth = -1
  let elementStart = -1
  let messagesArrays = 0

  const push = (piece: string): ReadonlyArray<VisionMessage> => {
    text += piece
    const found: Array<VisionMessage> = []
    for (; scanned < text.length; scanned++) {
      const char = text[scanned]
      if (inString) {
        if (escaped) escaped = false
        else if (char === "\\") escaped = true
        else if (char === '"') {
          inString = false
          if (stringIsKey && stack.length === 1) {
            rootKey = Option.getOrUndefined(decodeKey(text.slice(stringStart, scanned + 1)))
          } else if (stack.length === elementDepth - 1) {
            const decoded = decodeLine(text.slice(stringStart, scanned + 1))
            if (Option.isSome(decoded)) found.push(decoded.value)
          }
        }
        continue
      }
      // Outside any object (a code fence, prose around the answer) only an object's opening counts,
      // as the strategy reads the answer (see `AnswerJson`): a quote in a sentence is not a string.
      if (stack.length === 0 && char !== "{") continue
      switch (char) {
        case '"':
          inString = true
          stringStart = scanned
          stringIsKey = expectKey && stack.at(-1) === "object"
          expectKey = false
          break
        case "{":
          if (stack.length === elementDepth - 1 && elementStart === -1) elementStart = scanned
          stack.push("object")
          expectKey = true
          break
        case "[":
          stack.push("array")
          if (stack.length === 2 && rootKey === "messages") {
            elementDepth = 3
            messagesArrays++
          }
          break
        case "}":
          stack.pop()
          if (elementStart !== -1 && stack.length === elementDepth - 1) {
            const decoded = decodeMessage(text.slice(elementStart, scanned + 1))
            if (Option.isSome(decoded)) found.push(decoded.value)
            elementStart = -1
          }
          break
        case "]":
          stack.pop()
          if (stack.length === 1) elementDepth = -1
          break
        case ",":
          expectKey = stack.at(-1) === "object"
          break
        case ":":
          expectKey = false
          break
        default:
          break
      }
    }
    return found
  }

  return { push, ambiguous: () => messagesArrays > 1 }
}
