/**
 * Object storage: S3-compatible (AWS S3, Cloudflare R2) when `S3_BUCKET` is set, else the local
 * disk under `DATA_DIR/storage` with URLs served by the api itself (said once in the log).
 */
import { Context, Effect, Layer, Option, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { AppConfig } from "../config.ts"
import { LocalStorageHttp, type LocalStorageOptions, makeLocalStorage } from "./local.ts"
import { type StorageError, type StorageShape } from "./model.ts"
import type { S3Options } from "./s3.ts"

/**
 * The key of the local storage's signed URLs when UPLOAD_SIGNING_SECRET is unset: made on first
 * use and kept under DATA_DIR, so URLs survive a restart. Two processes starting together keep
 * the first one written.
 */
const loadOrCreateSecret = (dir: string): Uint8Array => {
  const file = join(dir, "signing-secret")
  const read = () => {
    try {
      const text = readFileSync(file, "utf8").trim()
      return text.length >= 43 ? Buffer.from(text, "base64url") : undefined
    } catch {
      return undefined
    }
  }
  const existing = read()
  if (existing) return existing
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  try {
    writeFileSync(file, randomBytes(32).toString("base64url"), { flag: "wx", mode: 0o600 })
  } catch {
    // Another process won the race: use its secret.
  }
  return read() ?? randomBytes(32)
}

export class Storage extends Context.Tag("Storage")<Storage, StorageShape>() {
  /**
   * AWS S3, Cloudflare R2, or any S3-compatible store (tests: s3rver). The AWS SDK (~12 MB of
   * heap) is loaded only here, when S3 is configured (issue #17); failing to load it is a defect. A
   * bucket that does not exist or refuses these credentials fails the layer (checked at boot).
   */
  static s3(options: S3Options): Layer.Layer<Storage, StorageError> {
    return Layer.scoped(
      Storage,
      Effect.flatMap(Effect.orDie(Effect.tryPromise(() => import("./s3.ts"))), (s3) => s3.makeS3Storage(options))
    )
  }

  /** Files under `options.root`; the api serves its signed URLs (`LocalStorageHttp`). */
  static local(options: LocalStorageOptions): Layer.Layer<Storage | LocalStorageHttp, StorageError> {
    return Layer.effectContext(
      Effect.map(makeLocalStorage(options), ({ storage, http }) =>
        Context.make(Storage, storage).pipe(Context.add(LocalStorageHttp, http))
      )
    )
  }

  /** The layer the processes use: S3 when configured, the local disk otherwise (said once in the log). */
  static readonly layer: Layer.Layer<Storage, StorageError, AppConfig> = Layer.unwrapEffect(
    Effect.gen(function* () {
      const config = yield* AppConfig
      const storage = config.storage
      if (storage.driver === "s3") {
        const bucket = Option.getOrElse(storage.bucket, () => "")
        yield* Effect.logInfo(`Storage: S3 bucket ${bucket}`)
        return Storage.s3({
          bucket,
          region: storage.region,
          endpoint: Option.getOrUndefined(storage.endpoint),
          forcePathStyle: storage.forcePathStyle,
          credentials: Option.getOrUndefined(
            Option.all({ accessKeyId: storage.accessKeyId, secretAccessKey: storage.secretAccessKey })
          )
        })
      }
      const root = join(config.dataDir, "storage")
      yield* Effect.logWarning(
        `Storage: S3_BUCKET is unset, using the local disk in ${root} (upload URLs served by this api at ${storage.publicBaseUrl})`
      )
      return Storage.local({
        root,
        publicBaseUrl: storage.publicBaseUrl,
        secret: Option.match(storage.signingSecret, {
          onNone: () => loadOrCreateSecret(root),
          onSome: (secret) => Buffer.from(Redacted.value(secret))
        })
      })
    })
  )
}
