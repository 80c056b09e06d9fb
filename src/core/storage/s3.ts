/**
 * Storage on AWS S3, Cloudflare R2 or any S3-compatible store, through `@aws-sdk/client-s3`.
 * Uploads are pre-signed PUTs with Content-Type and Content-Length in the signature (R2 has no
 * POST policies), so the store itself refuses another type or size, and with `If-None-Match: *`
 * (a conditional write, on S3 and R2), so the store refuses a second write to the key: a URL
 * takes exactly one PUT. A presigned URL cannot be revoked: a PUT after the object was deleted
 * (within the URL's TTL) is caught by the uploads' sweep.
 */
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  S3ServiceException
} from "@aws-sdk/client-s3"
import { getSignedUrl } from "@aws-sdk/s3-request-presigner"
import { Clock, Duration, Effect, Either, Option, Redacted } from "effect"
import { type ByteRange, StorageError, type StorageShape } from "./model.ts"

export interface S3Options {
  readonly bucket: string
  readonly region: string
  /** For R2 (`https://<account>.r2.cloudflarestorage.com`) or another S3-compatible store. */
  readonly endpoint?: string | undefined
  readonly forcePathStyle?: boolean | undefined
  /** Static credentials; without them the SDK's default chain (environment, instance role, …). */
  readonly credentials?:
    { readonly accessKeyId: string; readonly secretAccessKey: Redacted.Redacted<string> } | undefined
}

// A missing bucket is a misconfiguration, not a missing object (a GET says which; a HEAD cannot,
// hence the bucket's check at boot).
const isMissing = (cause: unknown): boolean =>
  cause instanceof S3ServiceException &&
  cause.name !== "NoSuchBucket" &&
  (cause.name === "NotFound" || cause.name === "NoSuchKey" || cause.$metadata.httpStatusCode === 404)

/** How long the bucket's check at boot may take before the store counts as unreachable for now. */
const BUCKET_CHECK_TIMEOUT = Duration.seconds(5)

/** DeleteObjects takes at most 1000 keys per call. */
const chunks = <A>(items: ReadonlyArray<A>, size: number): Array<Array<A>> =>
  Array.from({ length: Math.ceil(items.length / size) }, (_, index) => items.slice(index * size, (index + 1) * size))

export const makeS3Storage = (options: S3Options) =>
  Effect.gen(function* () {
    const client = yield* Effect.acquireRelease(
      Effect.sync(
        () =>
          new S3Client({
            region: options.region,
            ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
            forcePathStyle: options.forcePathStyle ?? false,
            ...(options.credentials === undefined
              ? {}
              : {
                  credentials: {
                    accessKeyId: options.credentials.accessKeyId,
                    secretAccessKey: Redacted.value(options.credentials.secretAccessKey)
                  }
                }),
            // Checksums only where the API requires them: a default CRC32 on presigned PUTs would
            // oblige the app to compute and send it (and R2 refuses some of them).
            requestChecksumCalculation: "WHEN_REQUIRED",
            responseChecksumValidation: "WHEN_REQUIRED"
          })
      ),
      (client) => Effect.sync(() => client.destroy())
    )
    const Bucket = options.bucket

    // The bucket, checked once at boot: a name, region or credentials that cannot work fail the boot
    // with what is wrong, rather than every upload later as "not received". A store that does not
    // answer yet is only logged: it may come back, and readiness does not depend on it.
    yield* Effect.tryPromise((abortSignal) => client.send(new HeadBucketCommand({ Bucket }), { abortSignal })).pipe(
      Effect.timeout(BUCKET_CHECK_TIMEOUT),
      Effect.catchAll((cause) => {
        const status =
          cause._tag === "UnknownException" && cause.error instanceof S3ServiceException
            ? cause.error.$metadata.httpStatusCode
            : undefined
        const wrong =
          status === 404
            ? `S3 bucket ${Bucket} does not exist`
            : status === 403
              ? `S3 bucket ${Bucket}: access denied with these credentials`
              : status === 301
                ? `S3 bucket ${Bucket} is in another region than ${options.region}`
                : undefined
        return wrong === undefined
          ? Effect.logWarning("Storage: the S3 bucket could not be checked at boot; going on").pipe(
              Effect.annotateLogs({ bucket: Bucket, reason: cause._tag })
            )
          : Effect.fail(new StorageError({ operation: "s3.headBucket", cause: new Error(wrong) }))
      })
    )

    const call = <A>(operation: string, run: (signal: AbortSignal) => Promise<A>) =>
      Effect.tryPromise({ try: run, catch: (cause) => new StorageError({ operation, cause }) })

    /** A call whose 404 means "no such object". */
    const optional = <A>(operation: string, run: (signal: AbortSignal) => Promise<A>) =>
      Effect.tryPromise({
        try: (signal) =>
          run(signal).then(
            (value) => Option.some(value),
            (cause: unknown) => (isMissing(cause) ? Option.none<A>() : Promise.reject(cause))
          ),
        catch: (cause) => new StorageError({ operation, cause })
      })

    const expiresAt = (seconds: number) => Effect.map(Clock.currentTimeMillis, (now) => new Date(now + seconds * 1000))

    /**
     * DeleteObjects, at most 1000 keys a call. S3 answers HTTP 200 even when it deleted some keys
     * and not others (a per-key `Errors` entry: a policy, an object lock): that is a failure. Every
     * batch is sent even when one fails (the first failure is answered after), so a key the store
     * keeps refusing never shelters the keys of the batches after it.
     */
    const remove = (keys: ReadonlyArray<string>) =>
      Effect.validateAll(
        chunks(keys, 1000),
        (batch) =>
          call("s3.deleteObjects", (abortSignal) =>
            client.send(
              new DeleteObjectsCommand({
                Bucket,
                Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true }
              }),
              { abortSignal }
            )
          ).pipe(
            Effect.flatMap((output) =>
              output.Errors !== undefined && output.Errors.length > 0
                ? Effect.fail(
                    new StorageError({
                      operation: "s3.deleteObjects",
                      cause: new Error(`${output.Errors.length} object(s) not deleted: ${output.Errors[0]?.Code}`)
                    })
                  )
                : Effect.void
            )
          ),
        { discard: true }
      ).pipe(Effect.mapError((errors) => errors[0]))

    const storage: StorageShape = {
      driver: "s3",
      signUpload: (grant) =>
        Effect.gen(function* () {
          const url = yield* call("s3.signUpload", () =>
            getSignedUrl(
              client,
              new PutObjectCommand({
                Bucket,
                Key: grant.key,
                ContentType: grant.contentType,
                ContentLength: grant.contentLength,
                IfNoneMatch: "*"
              }),
              {
                expiresIn: grant.expiresInSeconds,
                signableHeaders: new Set(["content-type", "content-length", "if-none-match"])
              }
            )
          )
          return {
            url,
            method: "PUT" as const,
            headers: {
              "Content-Type": grant.contentType,
              "Content-Length": String(grant.contentLength),
              "If-None-Match": "*"
            },
            expiresAt: yield* expiresAt(grant.expiresInSeconds)
          }
        }),
      signDownload: (key, expiresInSeconds) =>
        Effect.gen(function* () {
          const url = yield* call("s3.signDownload", () =>
            // A private image: the store's answer says no cache may keep it (as the local route's does).
            getSignedUrl(
              client,
              new GetObjectCommand({ Bucket, Key: key, ResponseCacheControl: "private, no-store" }),
              {
                expiresIn: expiresInSeconds
              }
            )
          )
          return { url, method: "GET" as const, headers: {}, expiresAt: yield* expiresAt(expiresInSeconds) }
        }),
      head: (key) =>
        optional("s3.head", (abortSignal) =>
          client.send(new HeadObjectCommand({ Bucket, Key: key }), { abortSignal })
        ).pipe(
          Effect.map(
            Option.map((output) => ({
              size: output.ContentLength ?? 0,
              contentType: output.ContentType,
              lastModified: output.LastModified
            }))
          )
        ),
      get: (key, range?: ByteRange) =>
        optional("s3.get", async (abortSignal) => {
          const output = await client.send(
            new GetObjectCommand({
              Bucket,
              Key: key,
              ...(range === undefined ? {} : { Range: `bytes=${range.start}-${range.end}` })
            }),
            { abortSignal }
          )
          return output.Body === undefined ? new Uint8Array() : await output.Body.transformToByteArray()
        }),
      put: (key, body, contentType) =>
        call("s3.put", (abortSignal) =>
          client.send(
            new PutObjectCommand({
              Bucket,
              Key: key,
              Body: body,
              ContentType: contentType,
              ContentLength: body.length
            }),
            { abortSignal }
          )
        ).pipe(Effect.asVoid),
      remove,
      list: (prefix, { after, limit }) =>
        call("s3.list", (abortSignal) =>
          client.send(
            new ListObjectsV2Command({
              Bucket,
              Prefix: prefix,
              MaxKeys: limit,
              ...(after === undefined ? {} : { StartAfter: after })
            }),
            { abortSignal }
          )
        ).pipe(
          Effect.map((page) => ({
            objects: (page.Contents ?? []).flatMap((object) =>
              object.Key === undefined
                ? []
                : [{ key: object.Key, size: object.Size ?? 0, lastModified: object.LastModified ?? new Date(0) }]
            ),
            more: page.IsTruncated === true
          }))
        ),
      // Every page is emptied even when a deletion fails (the first failure is answered after): one
      // call deletes all the store lets it, whatever keys it refuses on the pages before.
      removePrefix: (prefix) =>
        Effect.gen(function* () {
          let removed = 0
          let failure: StorageError | undefined = undefined
          let token: string | undefined = undefined
          do {
            const continuationToken: string | undefined = token
            const page: ListObjectsV2CommandOutput = yield* call("s3.list", (abortSignal) =>
              client.send(
                new ListObjectsV2Command({
                  Bucket,
                  Prefix: prefix,
                  ...(continuationToken === undefined ? {} : { ContinuationToken: continuationToken })
                }),
                { abortSignal }
              )
            )
            const keys = (page.Contents ?? []).flatMap((object) => (object.Key === undefined ? [] : [object.Key]))
            const deleted = yield* Effect.either(remove(keys))
            if (Either.isLeft(deleted)) failure ??= deleted.left
            else removed += keys.length
            token = page.IsTruncated === true ? page.NextContinuationToken : undefined
          } while (token !== undefined)
          if (failure !== undefined) return yield* failure
          return removed
        })
    }
    return storage
  })
