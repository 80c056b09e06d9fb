/**
 * The local storage's own URLs (`/storage/<key>`), served by the api: a signed PUT accepts
 * exactly what it grants, anything else is refused with the envelope and nothing is written.
 */
import { afterAll, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs"
import { request as rawRequest } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { signLocalUrl } from "../../../src/core/storage/local.ts"
import { TestDb } from "../../support/database.ts"
import { failure, http } from "../../support/http.ts"
import { baseUrl, localTestStorage, testServer } from "../../support/server.ts"
import { getUpload, sendBytes, type Ticket, ticketFor } from "../../support/uploads.ts"
import { provisionUser } from "../../support/users.ts"
import { tinyImage } from "../../fixtures/images.ts"

const SECRET = "local-storage-test-secret-0123456789abcdef"
const root = mkdtempSync(join(tmpdir(), "wingmate-local-storage-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const Server = testServer({
  db: TestDb(),
  storage: localTestStorage({ root }),
  config: { UPLOAD_SIGNING_SECRET: SECRET }
})

const objects = () =>
  existsSync(join(root, "objects"))
    ? readdirSync(join(root, "objects"), { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile())
    : []
const leftovers = () => readdirSync(join(root, "tmp"))

const ALREADY_USED = failure(
  "URL_ALREADY_USED",
  "This upload URL was already used: start a new upload to send another image"
)

/** A fresh user's ticket for a small PNG, and the PNG. */
const freshTicket = Effect.gen(function* () {
  const url = yield* baseUrl
  const user = yield* provisionUser(url, "uploader")
  const png = yield* Effect.promise(() => tinyImage("png"))
  const ticket = yield* ticketFor(url, user.headers, png)
  return { url, user, png, ticket }
})

const keyOf = (ticket: Ticket) => decodeURIComponent(new URL(ticket.url).pathname.replace(/^\/storage\//, ""))

/**
 * A PUT through node:http, which sends the path as given (no `..` normalisation) and a chunked
 * body when no Content-Length is set.
 */
const putRaw = (url: string, headers: Record<string, string>, body: Buffer) =>
  Effect.async<{ status: number; body: unknown }>((resume) => {
    const { hostname, port } = new URL(url)
    const path = url.slice(url.indexOf("/", "http://".length))
    const req = rawRequest({ hostname, port, path, method: "PUT", headers }, (res) => {
      let text = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (text += chunk))
      res.on("end", () => resume(Effect.succeed({ status: res.statusCode ?? 0, body: JSON.parse(text) })))
    })
    req.write(body)
    req.end()
  })

layer(Server, { timeout: 60_000 })("local storage URLs", (it) => {
  it.effect("the signed PUT stores exactly the bytes; the signed GET serves them back with their type", () =>
    Effect.gen(function* () {
      const { png, ticket } = yield* freshTicket
      const before = objects().length
      const put = yield* sendBytes(ticket, png)
      expect(put.status).toBe(200)
      expect(objects()).toHaveLength(before + 1)

      const url = yield* baseUrl
      const download = signLocalUrl(
        { secret: Buffer.from(SECRET), publicBaseUrl: url },
        { method: "GET", key: keyOf(ticket), expires: Math.floor(Date.now() / 1000) + 60 }
      )
      const res = yield* Effect.promise(() => fetch(download))
      expect(res.status).toBe(200)
      expect(res.headers.get("content-type")).toBe("image/png")
      expect(res.headers.get("cache-control")).toBe("private, no-store")
      expect(Buffer.from(yield* Effect.promise(() => res.arrayBuffer()))).toEqual(png)

      // The upload URL does not read, and a download URL does not write.
      expect((yield* http(ticket.url)).body).toEqual(
        failure("URL_SIGNATURE_INVALID", "This URL's signature does not match what it grants")
      )
      const overwrite = yield* http(download, { method: "PUT", headers: { "content-type": "image/png" }, body: png })
      expect(overwrite.status).toBe(403)
      expect(overwrite.body).toEqual(
        failure("URL_SIGNATURE_INVALID", "This URL's signature does not match what it grants")
      )
    })
  )

  it.effect("a tampered signature, type, length or key is refused with 403 and nothing is written", () =>
    Effect.gen(function* () {
      const { png, ticket } = yield* freshTicket
      const before = objects().length
      const invalid = failure("URL_SIGNATURE_INVALID", "This URL's signature does not match what it grants")
      const signature = new URL(ticket.url).searchParams.get("signature") ?? ""
      const flipped = `${signature.startsWith("A") ? "B" : "A"}${signature.slice(1)}`
      const tampered = [
        ticket.url.replace(`signature=${signature}`, `signature=${flipped}`),
        ticket.url.replace(/&signature=[^&]+/, ""),
        ticket.url.replace(`length=${png.length}`, `length=${png.length + 1}`),
        ticket.url.replace("type=image%2Fpng", "type=image%2Fjpeg"),
        ticket.url.replace(/expires=(\d+)/, (_, expires: string) => `expires=${Number(expires) + 3600}`),
        ticket.url.replace("/uploads/", "/uploads%2F..%2F..%2Fuploads/"),
        ticket.url.replace(/\/users\/[^/]+\//, "/users/someone-else/")
      ]
      for (const url of tampered) {
        const res = yield* http(url, { method: "PUT", headers: ticket.headers, body: png })
        expect(res.status, url).toBe(403)
        expect(res.body, url).toEqual(invalid)
      }
      // A literal `..` (fetch would normalise it away): the raw path reaches the server.
      const traversal = ticket.url.replace(/\/storage\/[^?]+/, "/storage/users/../../../etc/passwd")
      expect(
        yield* putRaw(traversal, { "content-type": "image/png", "content-length": String(png.length) }, png)
      ).toEqual({
        status: 403,
        body: invalid
      })
      expect(objects()).toHaveLength(before)
    })
  )

  it.effect("an expired URL is refused with 403 URL_EXPIRED, even when its signature is right", () =>
    Effect.gen(function* () {
      const { url, png, ticket } = yield* freshTicket
      const expired = signLocalUrl(
        { secret: Buffer.from(SECRET), publicBaseUrl: url },
        {
          method: "PUT",
          key: keyOf(ticket),
          expires: Math.floor(Date.now() / 1000) - 1,
          contentType: "image/png",
          contentLength: png.length
        }
      )
      const res = yield* http(expired, { method: "PUT", headers: ticket.headers, body: png })
      expect(res.status).toBe(403)
      expect(res.body).toEqual(failure("URL_EXPIRED", "This URL has expired: ask for a new one"))
      expect(existsSync(join(root, "objects", ...keyOf(ticket).split("/")))).toBe(false)
    })
  )

  it.effect("another content type than the signed one is refused with 415", () =>
    Effect.gen(function* () {
      const { png, ticket } = yield* freshTicket
      for (const contentType of ["image/jpeg", "image/png; charset=binary", "application/octet-stream"]) {
        const res = yield* sendBytes(ticket, png, { "Content-Type": contentType })
        expect(res.status, contentType).toBe(415)
        expect(res.body).toEqual(
          failure("UNSUPPORTED_MEDIA_TYPE", "The Content-Type must be image/png, as signed into the URL", {
            expected: "image/png",
            received: contentType
          })
        )
      }
      expect(existsSync(join(root, "objects", ...keyOf(ticket).split("/")))).toBe(false)
    })
  )

  it.effect("a body of another length than the signed one is refused with 400, and no partial file stays", () =>
    Effect.gen(function* () {
      const { png, ticket } = yield* freshTicket
      const message = `The body must be exactly ${png.length} bytes, as signed into the URL`
      const shorter = png.subarray(0, png.length - 1)
      const short = yield* http(ticket.url, {
        method: "PUT",
        headers: { "content-type": "image/png" },
        body: shorter
      })
      expect(short.status).toBe(400)
      expect(short.body).toEqual(
        failure("CONTENT_LENGTH_MISMATCH", message, { expected: png.length, received: shorter.length })
      )
      const longer = Buffer.concat([png, Buffer.from([0])])
      const long = yield* http(ticket.url, { method: "PUT", headers: { "content-type": "image/png" }, body: longer })
      expect(long.status).toBe(400)
      expect(long.body).toEqual(
        failure("CONTENT_LENGTH_MISMATCH", message, { expected: png.length, received: longer.length })
      )
      const chunked = yield* putRaw(ticket.url, { "content-type": "image/png" }, png)
      expect(chunked).toEqual({
        status: 400,
        body: failure("CONTENT_LENGTH_MISMATCH", message, { expected: png.length, received: null })
      })
      expect(existsSync(join(root, "objects", ...keyOf(ticket).split("/")))).toBe(false)
      expect(leftovers()).toEqual([])
    })
  )

  it.effect("an upload URL takes one PUT: a second one, to a verified upload, is refused with 412", () =>
    Effect.gen(function* () {
      const { url, user, png, ticket } = yield* freshTicket
      expect((yield* sendBytes(ticket, png)).status).toBe(200)
      expect((yield* getUpload(url, user.headers, ticket.uploadId)).body).toMatchObject({
        data: { status: "verified" }
      })
      const junk = Buffer.alloc(png.length, 7)
      const again = yield* sendBytes(ticket, junk)
      expect(again.status).toBe(412)
      expect(again.body).toEqual(ALREADY_USED)
      expect(readFileSync(join(root, "objects", ...keyOf(ticket).split("/")))).toEqual(png)
    })
  )

  it.effect("a PUT after the object was deleted is refused: it does not bring the screenshot back", () =>
    Effect.gen(function* () {
      const { png, ticket } = yield* freshTicket
      expect((yield* sendBytes(ticket, png)).status).toBe(200)
      const object = join(root, "objects", ...keyOf(ticket).split("/"))
      // What the sessions pipeline does once OCR succeeded: the original goes.
      rmSync(object)
      const again = yield* sendBytes(ticket, png)
      expect(again.status).toBe(412)
      expect(again.body).toEqual(ALREADY_USED)
      expect(existsSync(object)).toBe(false)
    })
  )

  it.effect("two PUTs racing on one URL: exactly one is stored", () =>
    Effect.gen(function* () {
      const { png, ticket } = yield* freshTicket
      const answers = yield* Effect.all(
        Array.from({ length: 6 }, () => sendBytes(ticket, png)),
        { concurrency: "unbounded" }
      )
      expect(answers.map((answer) => answer.status).sort()).toEqual([200, 412, 412, 412, 412, 412])
    })
  )

  it.effect("a ticket taken before DELETE /users/me and used after it is refused (403), nothing written", () =>
    Effect.gen(function* () {
      const { url, user, png, ticket } = yield* freshTicket
      const erased = yield* http(`${url}/api/v1/users/me`, { method: "DELETE", headers: user.headers })
      expect(erased.status).toBe(204)
      const late = yield* sendBytes(ticket, png)
      expect(late.status).toBe(403)
      expect(late.body).toEqual(
        failure("FORBIDDEN", "This upload URL's account was erased", { reason: "account-erased" })
      )
      expect(existsSync(join(root, "objects", "users", user.id))).toBe(false)
    })
  )

  it.effect("a GET of a missing object is 404; routes other than PUT and GET are unknown", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const missing = signLocalUrl(
        { secret: Buffer.from(SECRET), publicBaseUrl: url },
        { method: "GET", key: "users/nobody/uploads/nothing", expires: Math.floor(Date.now() / 1000) + 60 }
      )
      const res = yield* http(missing)
      expect(res.status).toBe(404)
      expect(res.body).toEqual(failure("NOT_FOUND", "Object not found"))
      const post = yield* http(missing, { method: "POST", body: "x" })
      expect(post.status).toBe(404)
      expect(post.body).toMatchObject({ error: { code: "ROUTE_NOT_FOUND" } })
    })
  )
})
