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
  const stack: Array<Container> = []
  let inString = false
  let escaped = false
  // In an object, the next string is a key (after `{` or `,`), not a value.
  let expectKey = false
  let rootKey: string | undefined
  // The depth of the `messages` array's elements while inside it.
  let elementDepth = -1
  let messagesArrays = 0
  // The one span being read whose text is needed (a top-level key, a line, a message object): its
  // pieces before the current one. Only it is kept, never the answer so far: indexing a string grown
  // by `+=` makes V8 copy all of it, at every piece (quadratic in 1-character deltas).
  let span: "key" | "line" | "element" | undefined
  let held: Array<string> = []

  const push = (piece: string): ReadonlyArray<VisionMessage> => {
    const found: Array<VisionMessage> = []
    let spanStart = 0
    const open = (kind: NonNullable<typeof span>, at: number) => {
      span = kind
      spanStart = at
      held = []
    }
    const close = (at: number): string => {
      held.push(piece.slice(spanStart, at + 1))
      const whole = held.join("")
      span = undefined
      held = []
      return whole
    }
    for (let at = 0; at < piece.length; at++) {
      const char = piece[at]
      if (inString) {
        if (escaped) escaped = false
        else if (char === "\\") escaped = true
        else if (char === '"') {
          inString = false
          if (span === "key") {
            rootKey = Option.getOrUndefined(decodeKey(close(at)))
          } else if (span === "line") {
            const decoded = decodeLine(close(at))
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
          if (expectKey && stack.at(-1) === "object" && stack.length === 1) open("key", at)
          else if (stack.length === elementDepth - 1) open("line", at)
          expectKey = false
          break
        case "{":
          if (stack.length === elementDepth - 1 && span === undefined) open("element", at)
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
          if (span === "element" && stack.length === elementDepth - 1) {
            const decoded = decodeMessage(close(at))
            if (Option.isSome(decoded)) found.push(decoded.value)
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
    if (span !== undefined) held.push(piece.slice(spanStart))
    return found
  }

  return { push, ambiguous: () => messagesArrays > 1 }
}
