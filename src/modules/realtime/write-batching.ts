/**
 * Frames sent to one socket in the same turn of the event loop leave in one write: the socket is
 * corked at the turn's first frame and uncorked once the turn's callbacks have run
 * (`setImmediate`). A burst relays several events of a session at once (a status, lines, the
 * transcript), and each frame was a `writev` and a TCP segment of its own: in bench:latency's
 * burst of 20 sessions, 184 of the api's 396 frames came in the same turn as another frame on
 * their socket (bench/README.md, issue #17). Cork calls nest (`ws` corks each frame's header and
 * payload too); `end()` and `destroy()` flush or drop whatever is corked.
 */
import type { Writable } from "node:stream"

/** Called before each frame is written to `socket`: corks it until the end of this turn. */
export const batchingWrites = (socket: Pick<Writable, "cork" | "uncork">): (() => void) => {
  let corked = false
  const flush = () => {
    corked = false
    socket.uncork()
  }
  return () => {
    if (corked) return
    corked = true
    socket.cork()
    setImmediate(flush)
  }
}
