/**
 * The object storage contract shared by its two implementations (S3-compatible, local disk).
 * Keys are always chosen by the server; a URL it signs grants exactly one operation on one key.
 */
import type { Effect, Option } from "effect"
import { Schema } from "effect"

export class StorageError extends Schema.TaggedError<StorageError>()("StorageError", {
  operation: Schema.String,
  cause: Schema.Defect
}) {}

export interface ObjectInfo {
  readonly size: number
  /** As stored with the object (what the uploader sent); undefined when the store has none. */
  readonly contentType: string | undefined
  /** When the store last wrote it, by the store's clock; undefined when the store does not say. */
  readonly lastModified: Date | undefined
}

/** One object of a listing. */
export interface ListedObject {
  readonly key: string
  readonly size: number
  readonly lastModified: Date
}

/** A page of a listing in key order; `more` when keys after the last one remain. */
export interface ObjectPage {
  readonly objects: ReadonlyArray<ListedObject>
  readonly more: boolean
}

/** A request the client makes itself, straight to storage: the URL carries its authorization. */
export interface SignedRequest {
  readonly url: string
  readonly method: "PUT" | "GET"
  /** Headers the client must send as they are (for an upload, they are part of the signature). */
  readonly headers: Readonly<Record<string, string>>
  readonly expiresAt: Date
}

export interface UploadGrant {
  readonly key: string
  readonly contentType: string
  readonly contentLength: number
  readonly expiresInSeconds: number
}

export interface ByteRange {
  /** First byte, inclusive. */
  readonly start: number
  /** Last byte, inclusive. */
  readonly end: number
}

export interface StorageShape {
  /** `s3` (AWS S3, Cloudflare R2, any S3-compatible store) or `local` (files under DATA_DIR). */
  readonly driver: "s3" | "local"
  /** A pre-signed PUT of exactly this content type and length to `key`. */
  readonly signUpload: (grant: UploadGrant) => Effect.Effect<SignedRequest, StorageError>
  /** A pre-signed GET of `key`. */
  readonly signDownload: (key: string, expiresInSeconds: number) => Effect.Effect<SignedRequest, StorageError>
  /** Size and content type of a stored object; none when there is no such object. */
  readonly head: (key: string) => Effect.Effect<Option.Option<ObjectInfo>, StorageError>
  /** The object's bytes (or a range of them); none when there is no such object. */
  readonly get: (key: string, range?: ByteRange) => Effect.Effect<Option.Option<Uint8Array>, StorageError>
  readonly put: (key: string, body: Uint8Array, contentType: string) => Effect.Effect<void, StorageError>
  /** Deletes these objects; missing ones are not an error. */
  readonly remove: (keys: ReadonlyArray<string>) => Effect.Effect<void, StorageError>
  /** Deletes every object whose key starts with `prefix`; answers how many there were. */
  readonly removePrefix: (prefix: string) => Effect.Effect<number, StorageError>
  /** At most `limit` objects under `prefix` whose keys come after `after`, in key order (one list call on S3). */
  readonly list: (
    prefix: string,
    options: { readonly after?: string | undefined; readonly limit: number }
  ) => Effect.Effect<ObjectPage, StorageError>
}

/** Keys the server makes: letters, digits, `_ - .` in `/`-separated segments, never `.` or `..`. */
const KEY = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*(\/[A-Za-z0-9_-][A-Za-z0-9_.-]*)*$/

export const isValidKey = (key: string): boolean => key.length <= 512 && KEY.test(key)

/** Everything a user owns in storage lives under this prefix (what erasure deletes). */
export const userPrefix = (userId: string) => `users/${userId}/`

/** The owner of a key under `users/<userId>/`, if it is one. */
export const userIdOfKey = (key: string): string | undefined => /^users\/([^/]+)\//.exec(key)?.[1]
