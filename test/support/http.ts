/** Plain HTTP from tests: status, headers and the parsed JSON body (or the text when not JSON). */
import { Effect } from "effect"
import { request } from "node:http"

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
