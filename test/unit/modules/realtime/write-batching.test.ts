/**
 * Frames of one turn leave in one write: a socket whose writes are counted as the kernel would see
 * them (`_writev` once per flush of corked chunks, `_write` per uncorked chunk).
 */
import { describe, expect, it } from "@effect/vitest"
import { Writable } from "node:stream"
import { setImmediate as nextTurn } from "node:timers/promises"
import { batchingWrites } from "../../../../src/modules/realtime/write-batching.ts"

const countingSocket = () => {
  const writes: Array<ReadonlyArray<string>> = []
  const socket = new Writable({
    write(chunk: Buffer, _encoding, done) {
      writes.push([chunk.toString()])
      done()
    },
    writev(chunks, done) {
      writes.push(chunks.map(({ chunk }) => String(chunk)))
      done()
    }
  })
  return { socket, writes }
}

describe("batchingWrites", () => {
  it("the frames of one turn go out in one write, in their order; the next turn's in another", async () => {
    const { socket, writes } = countingSocket()
    const batch = batchingWrites(socket)
    for (const frame of ["status", "lines", "transcript"]) {
      batch()
      socket.write(frame)
    }
    expect(writes).toEqual([])
    await nextTurn()
    expect(writes).toEqual([["status", "lines", "transcript"]])
    batch()
    socket.write("delta")
    await nextTurn()
    expect(writes).toEqual([["status", "lines", "transcript"], ["delta"]])
  })

  it("nested corks (a frame's header and payload) stay inside the turn's batch", async () => {
    const { socket, writes } = countingSocket()
    const batch = batchingWrites(socket)
    for (const frame of ["a", "b"]) {
      batch()
      socket.cork()
      socket.write(`${frame}-header`)
      socket.write(`${frame}-payload`)
      socket.uncork()
    }
    await nextTurn()
    expect(writes).toEqual([["a-header", "a-payload", "b-header", "b-payload"]])
  })

  it("ending the socket mid-turn flushes what is corked", async () => {
    const { socket, writes } = countingSocket()
    const batch = batchingWrites(socket)
    batch()
    socket.write("close-frame")
    const finished = new Promise((resolve) => socket.on("finish", resolve))
    socket.end()
    await finished
    expect(writes.flat()).toEqual(["close-frame"])
    await nextTurn()
  })
})
