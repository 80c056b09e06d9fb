/**
 * The replay of a kept answer: bytes as they were, an event stream as its events (comments left
 * out), and with `Last-Event-ID` only the events after it, 204 when none is left.
 */
import { describe, expect, it } from "@effect/vitest"
import { replay } from "../../../../src/core/http/idempotency.ts"
import type { StoredResponse } from "../../../../src/core/idempotency.ts"

const stream = (body: string): StoredResponse => ({
  fingerprint: "f",
  status: 200,
  contentType: "text/event-stream",
  headers: { "cache-control": "no-cache" },
  kind: "stream",
  body
})

const text = (response: ReturnType<typeof replay>) =>
  response.body._tag === "Uint8Array" ? new TextDecoder().decode(response.body.body) : `<${response.body._tag}>`

const FRAMES = "retry: 3000\n\nid: 1\nevent: delta\ndata: {}\n\nid: 2\nevent: final\ndata: {}\n\n"

describe("idempotent replay", () => {
  it("bytes: the status, Content-Type, kept headers and body, with Idempotent-Replayed", () => {
    const response = replay(
      {
        fingerprint: "f",
        status: 201,
        contentType: "application/json",
        headers: { "cache-control": "no-store" },
        kind: "bytes",
        body: Buffer.from('{"success":true}').toString("base64")
      },
      undefined
    )
    expect(response.status).toBe(201)
    expect(response.headers).toMatchObject({ "cache-control": "no-store", "idempotent-replayed": "true" })
    expect(response.body._tag === "Uint8Array" && response.body.contentType).toBe("application/json")
    expect(text(response)).toBe('{"success":true}')
  })

  it("an event stream: its events in one body, keep-alive comments left out", () => {
    const response = replay(stream(`: keep-alive\n\n${FRAMES}: keep-alive\n\n`), undefined)
    expect(response.status).toBe(200)
    expect(response.body._tag === "Uint8Array" && response.body.contentType).toBe("text/event-stream")
    expect(text(response)).toBe(FRAMES)
  })

  it("Last-Event-ID: the events after it; at the last one, 204; an unknown id, all of them", () => {
    expect(text(replay(stream(FRAMES), "1"))).toBe("id: 2\nevent: final\ndata: {}\n\n")
    const ended = replay(stream(FRAMES), "2")
    expect(ended.status).toBe(204)
    expect(ended.headers["idempotent-replayed"]).toBe("true")
    expect(text(replay(stream(FRAMES), "7"))).toBe(FRAMES)
  })
})
