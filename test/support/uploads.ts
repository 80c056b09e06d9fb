/**
 * Uploads from tests: start one through the API, send the bytes the way the app does (the
 * returned method, URL and headers, with plain fetch), and reach the UploadsService that other
 * modules call (`verify`, `use`, `process`).
 */
import { Deferred, Effect, FiberId, Layer } from "effect"
import { UploadsService } from "../../src/modules/uploads/uploads.service.ts"
import { http, postJson } from "./http.ts"

export interface Ticket {
  readonly uploadId: string
  readonly url: string
  readonly method: string
  readonly headers: Record<string, string>
  readonly expiresAt: string
}

export const createUpload = (
  baseUrl: string,
  headers: Record<string, string>,
  body: { readonly contentType: string; readonly contentLength: number; readonly purpose: string }
) => postJson(`${baseUrl}/api/v1/uploads`, JSON.stringify(body), headers)

/** POST /uploads that must succeed: the ticket. */
export const ticketFor = (
  baseUrl: string,
  headers: Record<string, string>,
  bytes: Uint8Array,
  contentType = "image/png",
  purpose = "session"
) =>
  Effect.gen(function* () {
    const res = yield* createUpload(baseUrl, headers, { contentType, contentLength: bytes.length, purpose })
    if (res.status !== 201) return yield* Effect.dieMessage(`upload refused: ${res.status} ${res.text}`)
    return (res.body as { data: Ticket }).data
  })

/** Sends `bytes` to the ticket's URL with its method and headers (`headers` added or replaced). */
export const sendBytes = (ticket: Ticket, bytes: Uint8Array, headers: Record<string, string> = {}) =>
  http(ticket.url, { method: ticket.method, headers: { ...ticket.headers, ...headers }, body: bytes })

export const getUpload = (baseUrl: string, headers: Record<string, string>, uploadId: string) =>
  http(`${baseUrl}/api/v1/uploads/${uploadId}`, { headers })

/** What GET /uploads/:id shows of an upload rejected with `code` (for `toMatchObject`). */
export const rejectedAs = (code: string, message: string) => ({
  success: true,
  data: { status: "rejected", rejection: { code, message }, verifiedAt: null }
})

/**
 * A layer for `testServer({ routes })` that hands the test an UploadsService running on the
 * server's own storage, database and image processor.
 */
export const exposeUploadsService = () => {
  const service = Deferred.unsafeMake<UploadsService>(FiberId.none)
  return {
    layer: Layer.effectDiscard(Effect.flatMap(UploadsService, (uploads) => Deferred.succeed(service, uploads))).pipe(
      Layer.provide(UploadsService.Default)
    ),
    service: Deferred.await(service)
  }
}
