/** Plain HTTP from tests: status, headers and the parsed JSON body (or the text when not JSON). */
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { request } from "node:http"
import { connect } from "node:net"

export interface HttpResult {
  readonly status: number
  readonly headers: Headers
  readonly body: unknown
  readonly text: string
}

export const http = (url: string, init?: RequestInit) =>
  Effect.promise(async (): Promise<HttpResult> => {
    const response = await fetch(url, init)
    const text = await response.text()
    let body: unknown = text
    try {
      body = JSON.parse(text)
    } catch {
      // not JSON: keep the text
    }
    return { status: response.status, headers: response.headers, body, text }
  })

export const postJson = (url: string, body: string, headers: Record<string, string> = {}) =>
  http(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body })

/** The `details.issues[].path` of a VALIDATION_ERROR envelope, sorted. */
export const issuePaths = (body: unknown): Array<string> => {
  const issues =
    typeof body === "object" && body !== null && "error" in body
      ? (body as { error?: { details?: { issues?: Array<{ path: string }> } } }).error?.details?.issues
      : undefined
  return (issues ?? []).map((issue) => issue.path).sort()
}

/** The failure envelope the server answers with: `{ success: false, error: { code, message, details? } }`. */
export const failure = (code: string, message: string, details?: unknown) => ({
  success: false,
  error: details === undefined ? { code, message } : { code, message, details }
})

/**
 * One request with the request target sent exactly as given (`//api/v1/…`, `/%61pi/…`, the
 * absolute form `http://host/api/…`): `fetch` would normalise some of them away.
 */
export const rawHttp = (
  base: string,
  target: string,
  init: { readonly method?: string; readonly headers?: Record<string, string>; readonly body?: string } = {}
) =>
  Effect.async<HttpResult, Error>((resume) => {
    const { hostname, port } = new URL(base)
    const req = request(
      { host: hostname, port, method: init.method ?? "GET", path: target, headers: init.headers },
      (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (chunk: Buffer) => chunks.push(chunk))
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8")
          let body: unknown = text
          try {
            body = JSON.parse(text)
          } catch {
            // not JSON: keep the text
          }
          const headers = new Headers()
          for (const [name, value] of Object.entries(res.headers)) {
            if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value)
          }
          resume(Effect.succeed({ status: res.statusCode ?? 0, headers, body, text }))
        })
      }
    )
    req.on("error", (error) => resume(Effect.fail(error)))
    req.end(init.body)
  })

/**
 * A WebSocket upgrade request written on a plain TCP socket, read until its answer is complete (by
 * its content-length) or the server closes the connection: a refusal is an HTTP answer, which
 * `WebSocket` clients hide (and Node's HTTP client, expecting an upgrade, may drop). `headers` (in
 * lower case) are written as given, an empty value too, in place of a valid handshake's.
 */
export const rawUpgrade = (url: string, path: string, headers: Record<string, string>) =>
  Effect.async<
    {
      readonly status: number
      readonly contentType: string | undefined
      readonly body: unknown
      readonly text: string
    },
    Error
  >((resume) => {
    const all: Record<string, string> = {
      host: "127.0.0.1",
      connection: "Upgrade",
      upgrade: "websocket",
      "sec-websocket-version": "13",
      "sec-websocket-key": randomBytes(16).toString("base64"),
      ...headers
    }
    const lines = [`GET ${path} HTTP/1.1`, ...Object.entries(all).map(([name, value]) => `${name}: ${value}`)]
    const socket = connect(Number(new URL(url).port), "127.0.0.1", () => {
      socket.write(`${lines.join("\r\n")}\r\n\r\n`)
    })
    const chunks: Array<Buffer> = []
    const answer = (complete: boolean) => {
      const text = Buffer.concat(chunks).toString("utf8")
      const split = text.indexOf("\r\n\r\n")
      const length = /\r\ncontent-length: (\d+)/i.exec(text)?.[1]
      if (split === -1) return complete ? resume(Effect.fail(new Error(`no complete answer: ${text}`))) : undefined
      const rest = text.slice(split + 4)
      if (!complete && (length === undefined || Buffer.byteLength(rest) < Number(length))) return undefined
      socket.destroy()
      let body: unknown = rest
      try {
        body = JSON.parse(rest)
      } catch {
        // not JSON: keep the text
      }
      resume(
        Effect.succeed({
          status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0),
          contentType: /\r\ncontent-type: ([^\r]*)/i.exec(text)?.[1],
          body,
          text: rest
        })
      )
    }
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk)
      answer(false)
    })
    socket.on("error", (error) => resume(Effect.fail(error)))
    socket.on("close", () => answer(true))
  })

/**
 * Requests `url` with `init` and reads the answer as it comes, split on `separator`: `onPart` is awaited
 * for each part (the test acts mid-stream). The whole text once the server ends it.
 */
export const readStreamed = (
  url: string,
  init: RequestInit,
  separator: string,
  onPart: (part: string) => Promise<void>
): Effect.Effect<string> =>
  Effect.promise(async () => {
    const response = await fetch(url, init)
    expect(response.status).toBe(200)
    if (response.body === null) throw new Error("no body")
    const decoder = new TextDecoder()
    let text = ""
    let buffer = ""
    for await (const chunk of response.body) {
      const piece = decoder.decode(chunk, { stream: true })
      text += piece
      buffer += piece
      let end = buffer.indexOf(separator)
      while (end !== -1) {
        const part = buffer.slice(0, end)
        buffer = buffer.slice(end + separator.length)
        end = buffer.indexOf(separator)
        await onPart(part)
      }
    }
    return text
  })
