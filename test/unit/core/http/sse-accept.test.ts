/** When a POST that can stream answers as an event stream: what its `Accept` header asks for. */
import { describe, expect, it } from "@effect/vitest"
import { wantsEventStream } from "../../../../src/core/http/sse.ts"

const wants = (accept: string | undefined) => wantsEventStream({ accept })

describe("wantsEventStream", () => {
  it("is true for text/event-stream in any case, with or without a quality above 0", () => {
    for (const accept of [
      "text/event-stream",
      "TEXT/EVENT-STREAM",
      "application/json, text/event-stream;q=0.5",
      "text/event-stream; q=1; charset=utf-8",
      " text/event-stream ;Q=0.1"
    ]) {
      expect(wants(accept), accept).toBe(true)
    }
  })

  it("is false when it is absent, refused with q=0, only implied by a wildcard, or part of another type", () => {
    for (const accept of [
      undefined,
      "",
      "application/json",
      "*/*",
      "text/*",
      "text/event-stream;q=0, application/json",
      "text/event-stream;q=0.0",
      "text/event-streams",
      "application/x-text/event-stream"
    ]) {
      expect(wants(accept), String(accept)).toBe(false)
    }
  })
})
