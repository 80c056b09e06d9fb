/**
 * Whether a request's body was valid UTF-8, judged on its bytes as they arrive. The platform reads
 * bodies as text through Node's lenient decoder, which turns a malformed sequence into U+FFFD:
 * without this the bytes would be stored as replacement characters, and a JSON body must be
 * UTF-8 (RFC 8259), so such a body is invalid JSON (`JsonBodies`).
 */
import type { IncomingMessage } from "node:http"

const invalid = new WeakSet<IncomingMessage>()

/** Checks every chunk Node's parser pushes into `request` (the body's raw bytes). */
export const watchUtf8 = (request: IncomingMessage): void => {
  const decoder = new TextDecoder("utf-8", { fatal: true })
  const push = request.push.bind(request)
  request.push = (chunk: unknown, encoding?: BufferEncoding) => {
    if (!invalid.has(request)) {
      try {
        if (chunk === null) decoder.decode()
        else if (chunk instanceof Uint8Array) decoder.decode(chunk, { stream: true })
      } catch {
        invalid.add(request)
      }
    }
    return push(chunk, encoding)
  }
}

/** True once a watched request's body held a sequence that is not UTF-8 (complete once it is read). */
export const hasInvalidUtf8 = (request: IncomingMessage): boolean => invalid.has(request)
