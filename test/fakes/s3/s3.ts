/**
 * An S3-compatible server for tests (s3rver, in this process, on a free port), spoken to through
 * the real AWS SDK. s3rver checks neither SigV4 signatures nor expiry: what a real store refuses
 * at the signature (another type or length) reaches storage here, and the server's own
 * verification must catch it.
 *
 * s3rver also ignores `If-None-Match: *` on PUT (S3 and R2 honour it: a conditional write), so a
 * small proxy in front of it does what they do: a PUT carrying it to a key that exists answers
 * 412 PreconditionFailed in S3's XML error form (409 ConditionalRequestConflict while another
 * conditional PUT to the key is in flight), and the header reaches the store only as sent.
 *
 * s3rver cannot page ListObjectsV2 on Node 22: it encrypts continuation tokens with DES, which
 * OpenSSL 3 refuses, so every truncated listing answered 500 InternalError. The proxy answers
 * ListObjectsV2 itself from s3rver's V1 listing (marker = start-after), with continuation tokens
 * of its own (the last key, base64url), as S3 pages: at most 1000 keys, in key order.
 *
 * The same proxy lets a test make DeleteObjects refuse chosen keys the way S3 does (HTTP 200, a
 * per-key `<Error>` in the result, the other keys deleted). A test reads the bucket's contents
 * from s3rver's files (`keys`), neither through the app's storage nor through a listing.
 */
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { Context, Effect, Layer, Redacted } from "effect"
import { createServer, request, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { mkdtemp, readdir, rm, utimes } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join, relative, sep } from "node:path"
import S3rver from "s3rver"
import { Storage } from "../../../src/core/storage/storage.ts"
import type { S3Options } from "../../../src/core/storage/s3.ts"

export interface S3FakeShape {
  readonly endpoint: string
  readonly bucket: string
  /** The real SDK's view of the bucket, with s3rver's fixed credentials and path-style URLs. */
  readonly storage: Layer.Layer<Storage>
  /** Every key in the bucket under `prefix`, in key order: the bucket's contents, read from s3rver's files. */
  readonly keys: (prefix: string) => Effect.Effect<ReadonlyArray<string>>
  /**
   * From now on, a DeleteObjects naming any of `keys` answers, as S3 does for keys it could not
   * delete (a bucket policy, an object lock), HTTP 200 with an `<Error>` (AccessDenied) for each
   * of them, and deletes the others it names.
   */
  readonly refuseDeletes: (keys: ReadonlyArray<string>) => Effect.Effect<void>
  /** Every key refused by `refuseDeletes` can be deleted again. */
  readonly allowDeletes: Effect.Effect<void>
  /** Writes objects straight to the bucket (not through the app's storage). */
  readonly put: (
    objects: ReadonlyArray<{ readonly key: string; readonly body: Uint8Array; readonly contentType: string }>
  ) => Effect.Effect<void>
  /** Sets the object's last-modified time `seconds` back (as if it had been written then). */
  readonly backdate: (key: string, seconds: number) => Effect.Effect<void>
}

const s3Error = (res: ServerResponse, status: number, code: string, message: string) => {
  res.writeHead(status, { "content-type": "application/xml" })
  res.end(
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>` +
      `<Condition>If-None-Match</Condition><RequestId>s3-fake</RequestId></Error>`
  )
}

/** What the real SDK needs to reach `bucket` on the fake: s3rver's fixed credentials, path-style URLs. */
export const s3Options = (endpoint: string, bucket: string): S3Options => ({
  bucket,
  region: "us-east-1",
  endpoint,
  forcePathStyle: true,
  credentials: { accessKeyId: "S3RVER", secretAccessKey: Redacted.make("S3RVER") }
})

/** Whether the object at `path` (`/<bucket>/<key>`) exists upstream. */
const exists = (upstream: AddressInfo, path: string) =>
  new Promise<boolean>((resolve, reject) => {
    const head = request({ host: "127.0.0.1", port: upstream.port, method: "HEAD", path }, (res) => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    head.on("error", reject)
    head.end()
  })

const xmlText = (text: string) =>
  text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const fromXmlText = (text: string) =>
  text
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, "&")

const readBody = (req: IncomingMessage) =>
  new Promise<Buffer>((resolve, reject) => {
    const parts: Array<Buffer> = []
    req.on("data", (part: Buffer) => parts.push(part))
    req.on("end", () => resolve(Buffer.concat(parts)))
    req.on("error", reject)
  })

/** Deletes one object upstream (a plain DeleteObject). */
const deleteUpstream = (upstream: AddressInfo, bucket: string, key: string) =>
  new Promise<void>((resolve, reject) => {
    const path = `/${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`
    const out = request({ host: "127.0.0.1", port: upstream.port, method: "DELETE", path }, (res) => {
      res.resume()
      res.on("end", () =>
        res.statusCode === 204 || res.statusCode === 200 ? resolve() : reject(new Error(`DELETE ${res.statusCode}`))
      )
    })
    out.on("error", reject)
    out.end()
  })

/**
 * A DeleteObjects naming a refused key: each refused key answered with an `<Error>`, the
 * others deleted one by one upstream; HTTP 200, as S3 answers a partial failure.
 */
const partialDelete = (
  upstream: AddressInfo,
  bucket: string,
  refused: Set<string>,
  body: Buffer,
  res: ServerResponse
) => {
  const keys = [...body.toString("utf8").matchAll(/<Key>([\s\S]*?)<\/Key>/g)].map((match) =>
    fromXmlText(match[1] ?? "")
  )
  const failing = keys.filter((key) => refused.has(key))
  const deleting = keys.filter((key) => !failing.includes(key))
  return Promise.all(deleting.map((key) => deleteUpstream(upstream, bucket, key))).then(
    () => {
      res.writeHead(200, { "content-type": "application/xml" })
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
          deleting.map((key) => `<Deleted><Key>${xmlText(key)}</Key></Deleted>`).join("") +
          failing
            .map(
              (key) =>
                `<Error><Key>${xmlText(key)}</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`
            )
            .join("") +
          `</DeleteResult>`
      )
    },
    () => res.destroy()
  )
}

const token = (key: string) => Buffer.from(key, "utf8").toString("base64url")

/**
 * ListObjectsV2 (`params` its query), answered from s3rver's V1 listing: the continuation token is
 * the last key of the page before, base64url (s3rver's own tokens need DES, which Node 22 lacks).
 */
const listV2 = (
  upstream: AddressInfo,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  params: URLSearchParams
) => {
  const continuation = params.get("continuation-token")
  const after =
    continuation === null ? params.get("start-after") : Buffer.from(continuation, "base64url").toString("utf8")
  const v1 = new URLSearchParams()
  for (const name of ["prefix", "delimiter", "max-keys", "encoding-type"]) {
    const value = params.get(name)
    if (value !== null) v1.set(name, value)
  }
  if (after !== null && after !== "") v1.set("marker", after)
  const out = request(
    { host: "127.0.0.1", port: upstream.port, method: "GET", path: `${path}?${v1}`, headers: req.headers },
    (answer) => {
      const parts: Array<Buffer> = []
      answer.on("data", (part: Buffer) => parts.push(part))
      answer.on("end", () => {
        const text = Buffer.concat(parts).toString("utf8")
        if (answer.statusCode !== 200) {
          res.writeHead(answer.statusCode ?? 502, { "content-type": "application/xml" })
          return res.end(text)
        }
        const keys = [...text.matchAll(/<Contents>\s*<Key>([\s\S]*?)<\/Key>/g)].map((match) =>
          fromXmlText(match[1] ?? "")
        )
        const truncated = /<IsTruncated>true<\/IsTruncated>/.test(text)
        const last = keys.at(-1)
        const paging =
          `<KeyCount>${keys.length}</KeyCount>` +
          (continuation === null ? "" : `<ContinuationToken>${xmlText(continuation)}</ContinuationToken>`) +
          (truncated && last !== undefined ? `<NextContinuationToken>${token(last)}</NextContinuationToken>` : "")
        const body = text
          .replace(
            /<Marker>[\s\S]*?<\/Marker>|<Marker\/>/,
            after === null || continuation !== null ? "" : `<StartAfter>${xmlText(after)}</StartAfter>`
          )
          .replace(/<NextMarker>[\s\S]*?<\/NextMarker>/, "")
          .replace(/<IsTruncated>/, `${paging}<IsTruncated>`)
        res.writeHead(200, { "content-type": "application/xml" })
        res.end(body)
      })
    }
  )
  out.on("error", () => res.destroy())
  req.resume()
  out.end()
}

/**
 * The proxy honouring `If-None-Match: *` on object PUTs, answering ListObjectsV2 (`listV2`) and
 * refusing the keys in `refused` in DeleteObjects; everything else passes through untouched.
 */
const conditionalWrites = (upstream: AddressInfo, bucket: string, refused: Set<string>) => {
  const inFlight = new Set<string>()
  const forward = (req: IncomingMessage, res: ServerResponse, done: () => void = () => {}) => {
    const out = request(
      { host: "127.0.0.1", port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
        answer.on("end", done)
      }
    )
    out.on("error", () => {
      done()
      res.destroy()
    })
    req.pipe(out)
  }
  return createServer((req, res) => {
    const [path = "/", query = ""] = (req.url ?? "/").split("?")
    const params = new URLSearchParams(query)
    if (req.method === "GET" && params.get("list-type") === "2" && (path === `/${bucket}` || path === `/${bucket}/`)) {
      return listV2(upstream, req, res, path, params)
    }
    if (req.method === "POST" && params.has("delete") && refused.size > 0) {
      readBody(req).then(
        (body) => {
          const named = [...refused].some((key) => body.includes(`<Key>${xmlText(key)}</Key>`))
          if (named) return partialDelete(upstream, bucket, refused, body, res)
          const out = request(
            { host: "127.0.0.1", port: upstream.port, method: req.method, path: req.url, headers: req.headers },
            (answer) => {
              res.writeHead(answer.statusCode ?? 502, answer.headers)
              answer.pipe(res)
            }
          )
          out.on("error", () => res.destroy())
          out.end(body)
          return undefined
        },
        () => res.destroy()
      )
      return
    }
    if (req.method !== "PUT" || req.headers["if-none-match"] !== "*") return forward(req, res)
    if (inFlight.has(path)) {
      req.resume()
      return s3Error(res, 409, "ConditionalRequestConflict", "A conflicting conditional operation is in progress")
    }
    inFlight.add(path)
    const release = () => void inFlight.delete(path)
    exists(upstream, path).then(
      (found) => {
        if (!found) return forward(req, res, release)
        release()
        req.resume()
        s3Error(res, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
      },
      () => {
        release()
        res.destroy()
      }
    )
  })
}

export class S3Fake extends Context.Tag("S3Fake")<S3Fake, S3FakeShape>() {
  static readonly layer = (bucket = "wingmate-test") =>
    Layer.scoped(
      S3Fake,
      Effect.gen(function* () {
        const directory = yield* Effect.acquireRelease(
          Effect.promise(() => mkdtemp(join(tmpdir(), "wingmate-s3rver-"))),
          (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
        )
        const refused = new Set<string>()
        const server = new S3rver({
          address: "127.0.0.1",
          port: 0,
          silent: true,
          directory,
          configureBuckets: [{ name: bucket }]
        })
        const upstream = yield* Effect.acquireRelease(
          Effect.promise(() => server.run()),
          () =>
            Effect.promise(() => {
              server.httpServer?.closeAllConnections()
              return server.close()
            })
        )
        const proxy = yield* Effect.acquireRelease(
          Effect.async<{ readonly server: ReturnType<typeof conditionalWrites>; readonly port: number }>((resume) => {
            const front = conditionalWrites(upstream, bucket, refused)
            front.listen(0, "127.0.0.1", () => {
              const address = front.address()
              resume(Effect.succeed({ server: front, port: typeof address === "object" && address ? address.port : 0 }))
            })
          }),
          ({ server: front }) =>
            Effect.async<void>((resume) => {
              front.closeAllConnections()
              front.close(() => resume(Effect.void))
            })
        )
        const endpoint = `http://127.0.0.1:${proxy.port}`
        const suffix = "._S3rver_object"
        const keys = (prefix: string) =>
          Effect.promise(async () => {
            const base = join(directory, bucket)
            const entries = await readdir(base, { recursive: true, withFileTypes: true })
            return entries
              .filter((entry) => entry.isFile() && entry.name.endsWith(suffix))
              .map((entry) =>
                relative(base, join(entry.parentPath, entry.name)).split(sep).join("/").slice(0, -suffix.length)
              )
              .filter((key) => key.startsWith(prefix))
              .sort()
          })
        const client = yield* Effect.acquireRelease(
          Effect.sync(
            () =>
              new S3Client({
                region: "us-east-1",
                endpoint: `http://127.0.0.1:${upstream.port}`,
                forcePathStyle: true,
                credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" }
              })
          ),
          (client) => Effect.sync(() => client.destroy())
        )
        return {
          endpoint,
          bucket,
          keys,
          refuseDeletes: (names: ReadonlyArray<string>) =>
            Effect.sync(() => {
              for (const name of names) refused.add(name)
            }),
          allowDeletes: Effect.sync(() => refused.clear()),
          put: (objects) =>
            Effect.forEach(
              objects,
              ({ key, body, contentType }) =>
                Effect.promise(() =>
                  client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }))
                ),
              { concurrency: 16, discard: true }
            ),
          backdate: (key: string, seconds: number) =>
            Effect.promise(() => {
              const parts = key.split("/")
              const name = parts.pop() ?? ""
              const at = new Date(Date.now() - seconds * 1000)
              return utimes(join(directory, bucket, ...parts, `${name}._S3rver_object`), at, at)
            }),
          // The fake's bucket exists: a failed check at boot is a broken fake.
          storage: Layer.orDie(Storage.s3(s3Options(endpoint, bucket)))
        }
      })
    )
}
