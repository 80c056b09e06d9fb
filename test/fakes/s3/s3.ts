/**
 * An S3-compatible server for tests (s3rver, in this process, on a free port), spoken to through
 * the real AWS SDK. s3rver checks neither SigV4 signatures nor expiry: what a real store refuses
 * at the signature (another type or length) reaches storage here, and the server's own
 * verification must catch it.
 */
import { Context, Effect, Layer, Redacted } from "effect"
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
        const address = yield* Effect.acquireRelease(
          Effect.promise(() => server.run()),
          () =>
            Effect.promise(() => {
              server.httpServer?.closeAllConnections()
              return server.close()
            })
        )
        const endpoint = `http://127.0.0.1:${address.port}`
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
