/**
 * Uploads: the app asks for a pre-signed URL, sends the image's bytes straight to object storage
 * with it, and later steps (sessions, openers) refer to the upload by its id, never by a URL.
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { Authentication } from "./auth.ts"
import { Envelope } from "./envelope.ts"
import {
  IdempotencyKeyInFlightEnvelope,
  IdempotencyKeyReusedEnvelope,
  NotFoundEnvelope,
  PayloadTooLargeEnvelope,
  ServiceUnavailableEnvelope,
  UnsupportedMediaTypeEnvelope
} from "./errors.ts"
import { PlainString } from "./fields.ts"
import { ResourceId } from "./pagination.ts"

/** The image formats the server accepts, by their canonical media type. */
export const AcceptedImageTypes = ["image/png", "image/jpeg", "image/webp"] as const
export type AcceptedImageType = (typeof AcceptedImageTypes)[number]

export const UploadPurpose = Schema.Literal("session", "profile").annotations({
  identifier: "UploadPurpose",
  description: "`session`: a chat screenshot; `profile`: a match's profile screenshot"
})
export type UploadPurpose = typeof UploadPurpose.Type

export const CreateUpload = Schema.Struct({
  /** Checked by the server (415 for anything but PNG, JPEG and WebP), not by the schema. */
  contentType: PlainString().pipe(Schema.maxLength(200)).annotations({
    description: "image/png, image/jpeg or image/webp (HEIC must be converted by the app)"
  }),
  contentLength: Schema.Int.pipe(Schema.positive()).annotations({
    description: "the exact size of the bytes that will be uploaded; at most UPLOAD_MAX_BYTES"
  }),
  purpose: UploadPurpose
}).annotations({
  identifier: "CreateUpload",
  parseOptions: { onExcessProperty: "error", errors: "all" }
})
export type CreateUpload = typeof CreateUpload.Type

/** How to send the bytes: one request, exactly as described. */
export const UploadTicket = Schema.Struct({
  uploadId: Schema.String,
  url: Schema.String.annotations({ description: "signed; it grants one PUT of this type and length until expiresAt" }),
  method: Schema.Literal("PUT"),
  headers: Schema.Record({ key: Schema.String, value: Schema.String }).annotations({
    description: "send exactly these headers (Content-Type and Content-Length are signed into the URL)"
  }),
  expiresAt: Schema.DateFromString
}).annotations({ identifier: "UploadTicket" })
export type UploadTicket = typeof UploadTicket.Type

export const UploadStatus = Schema.Literal("pending", "verified", "rejected", "expired", "used").annotations({
  identifier: "UploadStatus",
  description:
    "`pending`: waiting for the bytes; `verified`: stored, and size, type and format match the declaration; " +
    "`rejected`: stored but not what was declared (see rejection); `expired`: the URL expired with nothing " +
    "uploaded; `used`: taken by a session or opener"
})
export type UploadStatus = typeof UploadStatus.Type

export const UploadRejection = Schema.Struct({
  code: Schema.String.annotations({
    description: "UPLOAD_SIZE_MISMATCH, UPLOAD_TYPE_MISMATCH or UPLOAD_CONTENT_MISMATCH"
  }),
  message: Schema.String
}).annotations({ identifier: "UploadRejection" })

export const Upload = Schema.Struct({
  id: Schema.String,
  purpose: UploadPurpose,
  contentType: Schema.String,
  contentLength: Schema.Int,
  status: UploadStatus,
  rejection: Schema.NullOr(UploadRejection),
  expiresAt: Schema.DateFromString,
  verifiedAt: Schema.NullOr(Schema.DateFromString),
  createdAt: Schema.DateFromString
}).annotations({ identifier: "Upload" })
export type Upload = typeof Upload.Type

export class UploadsGroup extends HttpApiGroup.make("uploads")
  .add(
    HttpApiEndpoint.post("create", "/")
      .annotate(OpenApi.Summary, "Start an upload")
      .setPayload(CreateUpload)
      .addSuccess(Envelope(UploadTicket), { status: 201 })
      .addError(UnsupportedMediaTypeEnvelope)
      .addError(PayloadTooLargeEnvelope)
      .addError(IdempotencyKeyReusedEnvelope)
      .addError(IdempotencyKeyInFlightEnvelope)
      .addError(ServiceUnavailableEnvelope)
      .annotate(
        OpenApi.Description,
        "Starts an upload: answers a pre-signed URL for one PUT of exactly this content type and length, " +
          "valid for UPLOAD_URL_TTL_SECONDS. PNG, JPEG and WebP only (HEIC: convert it in the app); " +
          "at most UPLOAD_MAX_BYTES."
      )
  )
  .add(
    HttpApiEndpoint.get("get", "/:uploadId")
      .annotate(OpenApi.Summary, "Get an upload")
      .setPath(Schema.Struct({ uploadId: ResourceId }))
      .addSuccess(Envelope(Upload))
      .addError(NotFoundEnvelope)
      .annotate(
        OpenApi.Description,
        "The upload's status. A pending upload is checked against storage on read: once its bytes " +
          "are there it becomes `verified` (size, type and magic bytes match) or `rejected`."
      )
  )
  .middleware(Authentication)
  .prefix("/uploads")
  .annotate(
    OpenApi.Description,
    "Screenshot uploads: a pre-signed URL for one PUT of the image, then its verification status."
  ) {}
