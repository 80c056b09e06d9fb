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
 */
import { Context, Effect, Layer, Redacted } from "effect"
import { createServer, request, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import S3rver from "s3rver"
import { Storage } from "../../../src/core/storage/storage.ts"

export interface S3FakeShape {
  readonly endpoint: string
  readonly bucket: string
  /** The real SDK's view of the bucket, with s3rver's fixed credentials and path-style URLs. */
  readonly storage: Layer.Layer<Storage>
}

const s3Error = (res: ServerResponse, status: number, code: string, message: string) => {
  res.writeHead(status, { "content-type": "application/xml" })
  res.end(
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>` +
      `<Condition>If-None-Match</Condition><RequestId>s3-fake</RequestId></Error>`
  )
}

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

/** The proxy honouring `If-None-Match: *` on object PUTs; everything else passes through untouched. */
const conditionalWrites = (upstream: AddressInfo) => {
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
    const path = (req.url ?? "/").split("?")[0] ?? "/"
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
            const front = conditionalWrites(upstream)
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
        return {
          endpoint,
          bucket,
          storage: Storage.s3({
            bucket,
            region: "us-east-1",
            endpoint,
            forcePathStyle: true,
            credentials: { accessKeyId: "S3RVER", secretAccessKey: Redacted.make("S3RVER") }
          })
        }
      })
    )
}
