/**
 * Storage on the local disk, the embedded default: objects under `DATA_DIR/storage`, and upload
 * and download URLs served by the api itself (`/storage/<key>`), signed with an HMAC and an
 * expiry like S3's pre-signed URLs. An upload URL grants one PUT of exactly the signed content
 * type and length; the body is streamed to disk, never held in memory. Like S3's `If-None-Match: *`,
 * a key takes one successful PUT: the first claims it (a marker under `spent/`, kept after the
 * object is verified, used or deleted), so a replayed URL can neither overwrite nor bring back.
 */
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeSink from "@effect/platform-node/NodeSink"
import * as NodeStream from "@effect/platform-node/NodeStream"
import { Clock, Context, Effect, Option, Schema, Stream } from "effect"
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto"
import { createReadStream, createWriteStream } from "node:fs"
import { mkdir, open, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises"
import { dirname, join, relative, sep } from "node:path"
import {
  ContentLengthMismatch,
  type Forbidden,
  type ServiceUnavailable,
  NotFound,
  UnsupportedMediaType,
  UrlAlreadyUsed,
  UrlExpired,
  UrlSignatureInvalid
} from "../../domain/errors.ts"
import { catalogErrorResponse, errorResponse } from "../http/middleware.ts"
import {
  type ByteRange,
  isValidKey,
  type ListedObject,
  type ObjectInfo,
  StorageError,
  type StorageShape
} from "./model.ts"

export interface LocalStorageOptions {
  /** Folder holding `objects/`, `meta/` (content types), `spent/` (keys written once) and `tmp/` (uploads in progress). */
  readonly root: string
  /** HMAC key of the signed URLs. */
  readonly secret: Uint8Array
  /** Origin the app reaches the api at, e.g. `http://localhost:3000`. */
  readonly publicBaseUrl: string
}

/** The URL path under which the api serves local objects. */
export const LOCAL_STORAGE_PATH = "/storage"

/** What a signed URL grants: one method on one key until `expires` (epoch seconds). */
export interface LocalGrant {
  readonly method: "PUT" | "GET"
  readonly key: string
  readonly expires: number
  /** Signed for uploads only. */
  readonly contentType?: string | undefined
  readonly contentLength?: number | undefined
}

const canonical = (grant: LocalGrant) =>
  [grant.method, grant.key, String(grant.expires), grant.contentType ?? "", String(grant.contentLength ?? "")].join(
    "\n"
  )

const hmac = (secret: Uint8Array, grant: LocalGrant) =>
  createHmac("sha256", secret).update(canonical(grant)).digest("base64url")

const encodeKey = (key: string) => key.split("/").map(encodeURIComponent).join("/")

/** The signed URL of `grant`: what `signUpload` and `signDownload` answer (exported for tests). */
export const signLocalUrl = (
  options: Pick<LocalStorageOptions, "secret" | "publicBaseUrl">,
  grant: LocalGrant
): string => {
  const query = new URLSearchParams({ expires: String(grant.expires) })
  if (grant.contentType !== undefined) query.set("type", grant.contentType)
  if (grant.contentLength !== undefined) query.set("length", String(grant.contentLength))
  query.set("signature", hmac(options.secret, grant))
  return `${options.publicBaseUrl}${LOCAL_STORAGE_PATH}/${encodeKey(grant.key)}?${query.toString()}`
}

const Seconds = Schema.NumberFromString.pipe(Schema.int())

/** The query of a signed URL; `type` and `length` are present on upload URLs only. */
const SignedQuery = Schema.Struct({
  expires: Seconds,
  signature: Schema.String,
  type: Schema.optional(Schema.String),
  length: Schema.optional(Seconds.pipe(Schema.nonNegative()))
})

/** The key of a `/storage/<key>` path, each segment URL-decoded. */
const keyOfPath = (pathname: string): Option.Option<string> => {
  if (!pathname.startsWith(`${LOCAL_STORAGE_PATH}/`)) return Option.none()
  try {
    const key = pathname
      .slice(LOCAL_STORAGE_PATH.length + 1)
      .split("/")
      .map(decodeURIComponent)
      .join("/")
    return isValidKey(key) ? Option.some(key) : Option.none()
  } catch {
    return Option.none()
  }
}

/** The grant a request's URL claims, or none when it is not even shaped like one. */
const claimedGrant = (
  method: "PUT" | "GET",
  url: string
): Option.Option<{ readonly grant: LocalGrant; readonly signature: string }> => {
  const parsed = URL.parse(url, "http://local")
  if (parsed === null) return Option.none()
  return Option.all({
    key: keyOfPath(parsed.pathname),
    query: Schema.decodeUnknownOption(SignedQuery)(Object.fromEntries(parsed.searchParams))
  }).pipe(
    Option.flatMap(({ key, query }) => {
      if (method === "GET")
        return Option.some({ grant: { method, key, expires: query.expires }, signature: query.signature })
      if (query.type === undefined || query.length === undefined) return Option.none()
      return Option.some({
        grant: { method, key, expires: query.expires, contentType: query.type, contentLength: query.length },
        signature: query.signature
      })
    })
  )
}

const sameSignature = (expected: string, given: string) => {
  const a = Buffer.from(expected)
  const b = Buffer.from(given)
  return a.length === b.length && timingSafeEqual(a, b)
}

/** What is kept beside each object: the content type it was stored with. */
const Meta = Schema.parseJson(Schema.Struct({ contentType: Schema.String }))
const encodeMeta = (contentType: string) => Schema.encodeSync(Meta)({ contentType })
const contentTypeOf = (text: string) =>
  Option.getOrUndefined(Option.map(Schema.decodeUnknownOption(Meta)(text), (meta) => meta.contentType))

const hasCode = (code: string) => (cause: unknown) =>
  typeof cause === "object" && cause !== null && "code" in cause && cause.code === code
const isMissing = hasCode("ENOENT")
const isTaken = hasCode("EEXIST")

/** Whether a key may still be written through its upload URL (e.g. not under an erased account's prefix). */
export type UploadAdmission = (key: string) => Effect.Effect<void, Forbidden | ServiceUnavailable | StorageError>

/** Serves the local storage's signed URLs (mounted only when storage is local). */
export class LocalStorageHttp extends Context.Tag("LocalStorageHttp")<
  LocalStorageHttp,
  {
    readonly upload: (
      admit: UploadAdmission
    ) => Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>
    readonly download: Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>
  }
>() {}

export const makeLocalStorage = (options: LocalStorageOptions) =>
  Effect.gen(function* () {
    const objects = join(options.root, "objects")
    const metas = join(options.root, "meta")
    const temporary = join(options.root, "tmp")
    const spent = join(options.root, "spent")
    yield* Effect.tryPromise({
      try: () =>
        Promise.all([objects, metas, temporary, spent].map((dir) => mkdir(dir, { recursive: true, mode: 0o700 }))),
      catch: (cause) => new StorageError({ operation: "local.init", cause })
    })

    const objectPath = (key: string) => join(objects, ...key.split("/"))
    const metaPath = (key: string) => `${join(metas, ...key.split("/"))}.json`
    const spentPath = (key: string) => join(spent, ...key.split("/"))

    const io = <A>(operation: string, run: () => Promise<A>) =>
      Effect.tryPromise({ try: run, catch: (cause) => new StorageError({ operation, cause }) })

    /** Keys are the server's, but a path is only ever made from a well-formed one (no `..`). */
    const onKey = <A>(operation: string, key: string, run: () => Promise<A>) =>
      isValidKey(key)
        ? io(operation, run)
        : Effect.fail(new StorageError({ operation, cause: new Error("Invalid object key") }))

    /** Undefined when the file does not exist. */
    const orMissing =
      <A>(run: () => Promise<A>) =>
      () =>
        run().catch((cause: unknown) => (isMissing(cause) ? undefined : Promise.reject(cause)))

    const head = (key: string) =>
      onKey(
        "local.head",
        key,
        orMissing(async (): Promise<ObjectInfo> => {
          const stats = await stat(objectPath(key))
          const meta = await readFile(metaPath(key), "utf8").catch(() => "")
          return { size: stats.size, contentType: contentTypeOf(meta), lastModified: stats.mtime }
        })
      ).pipe(Effect.map(Option.fromNullable))

    const get = (key: string, range?: ByteRange) =>
      onKey(
        "local.get",
        key,
        orMissing(async () => {
          if (range === undefined) {
            // A view of the file's buffer, not a copy of it (screenshots are megabytes).
            const whole = await readFile(objectPath(key))
            return new Uint8Array(whole.buffer, whole.byteOffset, whole.byteLength)
          }
          // Positioned reads into one buffer (a read stream costs more than the few bytes usually asked for).
          const file = await open(objectPath(key), "r")
          try {
            const buffer = Buffer.alloc(Math.max(0, range.end - range.start + 1))
            let filled = 0
            while (filled < buffer.length) {
              const { bytesRead } = await file.read(buffer, filled, buffer.length - filled, range.start + filled)
              if (bytesRead === 0) break
              filled += bytesRead
            }
            return new Uint8Array(buffer.subarray(0, filled))
          } finally {
            await file.close()
          }
        })
      ).pipe(Effect.map(Option.fromNullable))

    /** Moves `from` to `to`, making `to`'s folder only when it is missing (most objects go into an existing one). */
    const moveInto = async (from: string, to: string) => {
      try {
        await rename(from, to)
      } catch (cause) {
        if (!isMissing(cause)) throw cause
        await mkdir(dirname(to), { recursive: true, mode: 0o700 })
        await rename(from, to)
      }
    }

    /** Writes the content type, then moves the finished file in place (readers never see half an object). */
    const commit = (key: string, file: string, contentType: string) =>
      onKey("local.commit", key, async () => {
        const metaFile = join(temporary, `${randomUUID()}.json`)
        await writeFile(metaFile, encodeMeta(contentType), { mode: 0o600 })
        await moveInto(metaFile, metaPath(key))
        await moveInto(file, objectPath(key))
      })

    const put = (key: string, body: Uint8Array, contentType: string) =>
      Effect.gen(function* () {
        const file = join(temporary, randomUUID())
        yield* io("local.put", () => writeFile(file, body, { mode: 0o600 }))
        // Once committed the temporary file is gone: it is removed only when the commit did not happen.
        yield* commit(key, file, contentType).pipe(
          Effect.onError(() => Effect.promise(() => rm(file, { force: true })))
        )
      })

    const remove = (keys: ReadonlyArray<string>) =>
      io("local.remove", () =>
        Promise.all(
          keys
            .filter(isValidKey)
            .flatMap((key) => [rm(objectPath(key), { force: true }), rm(metaPath(key), { force: true })])
        )
      ).pipe(Effect.asVoid)

    /** Every key under `prefix` (walks only the folder the prefix points into). */
    const keysUnder = (prefix: string) =>
      io("local.keys", async () => {
        const folder = prefix.includes("/") ? prefix.slice(0, prefix.lastIndexOf("/")) : ""
        if (folder !== "" && !isValidKey(folder)) return []
        const base = folder === "" ? objects : objectPath(folder)
        const entries = await readdir(base, { recursive: true, withFileTypes: true }).catch((cause: unknown) =>
          isMissing(cause) ? [] : Promise.reject(cause)
        )
        return entries
          .filter((entry) => entry.isFile())
          .map((entry) => relative(objects, join(entry.parentPath, entry.name)).split(sep).join("/"))
          .filter((key) => key.startsWith(prefix))
      })

    /** Listed like S3: in key order, after `after`, at most `limit` (the local disk is small; it is walked whole). */
    const list = (prefix: string, { after, limit }: { readonly after?: string | undefined; readonly limit: number }) =>
      Effect.gen(function* () {
        const keys = (yield* keysUnder(prefix)).filter((key) => after === undefined || key > after).sort()
        const page = keys.slice(0, limit)
        const objects = yield* io("local.list", () =>
          Promise.all(
            page.map((key) =>
              stat(objectPath(key)).then(
                (stats): ListedObject | undefined => ({ key, size: stats.size, lastModified: stats.mtime }),
                (cause: unknown) => (isMissing(cause) ? undefined : Promise.reject(cause))
              )
            )
          )
        )
        return { objects: objects.filter((object) => object !== undefined), more: keys.length > limit }
      })

    /** Claims `key` for its one PUT; false when a PUT claimed it before. */
    const claim = (key: string) =>
      onKey("local.claim", key, async () => {
        await mkdir(dirname(spentPath(key)), { recursive: true, mode: 0o700 })
        return writeFile(spentPath(key), "", { flag: "wx", mode: 0o600 }).then(
          () => true,
          (cause: unknown) => (isTaken(cause) ? false : Promise.reject(cause))
        )
      })

    /** Written once through a URL (the marker), or present (written before markers existed, or by the server). */
    const written = (key: string) =>
      onKey("local.written", key, () =>
        Promise.all(
          [stat(spentPath(key)), stat(objectPath(key))].map((check) =>
            check.then(
              () => true,
              () => false
            )
          )
        )
      ).pipe(Effect.map((found) => found.some(Boolean)))

    const removePrefix = (prefix: string) =>
      Effect.gen(function* () {
        const keys = yield* keysUnder(prefix)
        yield* remove(keys)
        // A whole folder (e.g. a user's): leave no empty directories behind either.
        if (prefix.endsWith("/") && isValidKey(prefix.slice(0, -1))) {
          const folder = prefix.slice(0, -1)
          yield* io("local.removePrefix", () =>
            Promise.all([
              rm(objectPath(folder), { recursive: true, force: true }),
              rm(join(metas, ...folder.split("/")), { recursive: true, force: true }),
              // The erased account's tombstone refuses its URLs from now on.
              rm(spentPath(folder), { recursive: true, force: true })
            ])
          )
        }
        return keys.length
      })

    const nowSeconds = Effect.map(Clock.currentTimeMillis, (millis) => Math.floor(millis / 1000))

    const signed = (grant: LocalGrant, headers: Record<string, string>) => ({
      url: signLocalUrl(options, grant),
      method: grant.method,
      headers,
      expiresAt: new Date(grant.expires * 1000)
    })

    const storage: StorageShape = {
      driver: "local",
      signUpload: (grant) =>
        Effect.map(nowSeconds, (now) =>
          signed(
            {
              method: "PUT",
              key: grant.key,
              expires: now + grant.expiresInSeconds,
              contentType: grant.contentType,
              contentLength: grant.contentLength
            },
            { "Content-Type": grant.contentType, "Content-Length": String(grant.contentLength) }
          )
        ),
      signDownload: (key, expiresInSeconds) =>
        Effect.map(nowSeconds, (now) => signed({ method: "GET", key, expires: now + expiresInSeconds }, {})),
      head,
      get,
      put,
      remove,
      removePrefix,
      list
    }

    /** The grant of a request's signed URL, if its signature matches and it has not expired. */
    const authorize = (method: "PUT" | "GET", request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function* () {
        const claimed = Option.filter(claimedGrant(method, request.url), ({ grant, signature }) =>
          sameSignature(hmac(options.secret, grant), signature)
        )
        if (Option.isNone(claimed)) {
          return yield* new UrlSignatureInvalid({ message: "This URL's signature does not match what it grants" })
        }
        if ((yield* nowSeconds) > claimed.value.grant.expires) {
          return yield* new UrlExpired({ message: "This URL has expired: ask for a new one" })
        }
        return claimed.value.grant
      })

    const lengthMismatch = (expected: number, received: number | null) =>
      new ContentLengthMismatch({
        message: `The body must be exactly ${expected} bytes, as signed into the URL`,
        details: { expected, received }
      })

    /** Streams the body to a temporary file, counting bytes; more or fewer than `expected` is refused. */
    const receive = (request: HttpServerRequest.HttpServerRequest, grant: LocalGrant, expected: number) =>
      Effect.scoped(
        Effect.gen(function* () {
          const file = join(temporary, randomUUID())
          const output = yield* Effect.acquireRelease(
            Effect.sync(() => createWriteStream(file, { flags: "wx", mode: 0o600 })),
            (stream) =>
              Effect.promise(async () => {
                stream.destroy()
                await rm(file, { force: true })
              })
          )
          let received = 0
          const body = request.stream.pipe(
            Stream.mapError(() => lengthMismatch(expected, null)),
            Stream.tap((chunk) => {
              received += chunk.length
              return received > expected ? Effect.fail(lengthMismatch(expected, received)) : Effect.void
            })
          )
          yield* Stream.run(
            body,
            NodeSink.fromWritable(
              () => output,
              (cause) => new StorageError({ operation: "local.write", cause })
            )
          )
          if (received !== expected) return yield* lengthMismatch(expected, received)
          // Two PUTs racing on one URL: the first to claim the key writes it, the other is refused.
          if (!(yield* claim(grant.key))) return yield* alreadyUsed()
          yield* commit(grant.key, file, grant.contentType ?? "application/octet-stream").pipe(
            Effect.onError(() => Effect.promise(() => rm(spentPath(grant.key), { force: true })))
          )
        })
      )

    /** Failures answer their envelope; storage failures are logged and answer 500. */
    const respond = <E extends { readonly _tag: string; readonly message: string; readonly details?: unknown }>(
      handler: Effect.Effect<
        HttpServerResponse.HttpServerResponse,
        E | StorageError,
        HttpServerRequest.HttpServerRequest
      >
    ) =>
      handler.pipe(
        Effect.catchAll((error) =>
          error instanceof StorageError
            ? Effect.logError("Local storage failed", error).pipe(
                Effect.as(errorResponse("INTERNAL_ERROR", "An unexpected error occurred"))
              )
            : Effect.succeed(catalogErrorResponse(error))
        )
      )

    const alreadyUsed = () =>
      new UrlAlreadyUsed({ message: "This upload URL was already used: start a new upload to send another image" })

    const upload = (admit: UploadAdmission) =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const grant = yield* authorize("PUT", request)
        yield* admit(grant.key)
        // Refused before a byte is read; the claim at commit settles a race.
        if (yield* written(grant.key)) return yield* alreadyUsed()
        const expectedType = grant.contentType ?? ""
        const expectedLength = grant.contentLength ?? 0
        const contentType = request.headers["content-type"]
        if (contentType !== expectedType) {
          return yield* new UnsupportedMediaType({
            message: `The Content-Type must be ${expectedType}, as signed into the URL`,
            details: { expected: expectedType, received: contentType ?? null }
          })
        }
        const declared = request.headers["content-length"]
        if (declared !== String(expectedLength)) {
          return yield* lengthMismatch(expectedLength, declared === undefined ? null : Number(declared))
        }
        yield* receive(request, grant, expectedLength)
        return HttpServerResponse.empty({ status: 200 })
      })

    const download = Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const grant = yield* authorize("GET", request)
      const info = yield* head(grant.key)
      if (Option.isNone(info)) return yield* new NotFound({ message: "Object not found" })
      const path = objectPath(grant.key)
      return HttpServerResponse.stream(
        NodeStream.fromReadable(
          () => createReadStream(path),
          (cause) => new StorageError({ operation: "local.read", cause })
        ),
        {
          contentType: info.value.contentType ?? "application/octet-stream",
          contentLength: info.value.size,
          headers: { "cache-control": "private, no-store" }
        }
      )
    })

    return {
      storage,
      http: LocalStorageHttp.of({ upload: (admit) => respond(upload(admit)), download: respond(download) })
    }
  })
