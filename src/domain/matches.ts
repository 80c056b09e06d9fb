/** Matches: the people a user is talking to, shared by Magic Openers and Sessions. */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { Authentication } from "./auth.ts"
import { Envelope } from "./envelope.ts"
import {
  NotFoundEnvelope,
  SafetyBlockedEnvelope,
  UploadAlreadyUsedEnvelope,
  UploadContentMismatchEnvelope,
  UploadExpiredEnvelope,
  UploadNotReceivedEnvelope,
  UploadPurposeMismatchEnvelope,
  UploadSizeMismatchEnvelope,
  UploadTypeMismatchEnvelope
} from "./errors.ts"
import { LongText, Text } from "./fields.ts"
import { Page, PageParams, ResourceId } from "./pagination.ts"

/** What the vision model read from a profile screenshot. */
export const ExtractedProfile = Schema.Struct({
  name: Schema.NullOr(Schema.String.pipe(Schema.maxLength(100))),
  age: Schema.NullOr(Schema.Int.pipe(Schema.between(0, 120))),
  bio: Schema.NullOr(Schema.String.pipe(Schema.maxLength(2000))),
  prompts: Schema.Array(Schema.String.pipe(Schema.maxLength(500))).pipe(Schema.maxItems(10)),
  interests: Schema.Array(Schema.String.pipe(Schema.maxLength(60))).pipe(Schema.maxItems(30))
}).annotations({ identifier: "ExtractedProfile" })
export type ExtractedProfile = typeof ExtractedProfile.Type

export const Match = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  bio: Schema.NullOr(Schema.String),
  interests: Schema.Array(Schema.String),
  notes: Schema.NullOr(Schema.String),
  platform: Schema.NullOr(Schema.String),
  profileUploadId: Schema.NullOr(Schema.String),
  extractedProfile: Schema.NullOr(ExtractedProfile),
  createdAt: Schema.DateFromString,
  updatedAt: Schema.DateFromString
}).annotations({ identifier: "Match" })
export type Match = typeof Match.Type

const fields = {
  bio: LongText(2000),
  interests: Schema.Array(Text(60)).pipe(Schema.maxItems(30)),
  notes: LongText(2000),
  platform: Text(40),
  profileUploadId: ResourceId
}

export const CreateMatch = Schema.Struct({
  name: Text(100),
  bio: Schema.optional(fields.bio),
  interests: Schema.optional(fields.interests),
  notes: Schema.optional(fields.notes),
  platform: Schema.optional(fields.platform),
  /** An upload with purpose `profile`; its screenshot is read before the first generation. */
  profileUploadId: Schema.optional(fields.profileUploadId)
}).annotations({ identifier: "CreateMatch", parseOptions: { onExcessProperty: "error", errors: "all" } })
export type CreateMatch = typeof CreateMatch.Type

const clearable = <A, I>(schema: Schema.Schema<A, I>) => Schema.optionalWith(Schema.NullOr(schema), { exact: true })

export const UpdateMatch = Schema.Struct({
  name: Schema.optionalWith(Text(100), { exact: true }),
  bio: clearable(fields.bio),
  interests: Schema.optionalWith(fields.interests, { exact: true }),
  notes: clearable(fields.notes),
  platform: clearable(fields.platform),
  profileUploadId: clearable(fields.profileUploadId)
}).annotations({ identifier: "UpdateMatch", parseOptions: { onExcessProperty: "error", errors: "all" } })
export type UpdateMatch = typeof UpdateMatch.Type

const MatchPath = Schema.Struct({ matchId: ResourceId })

/** What taking a profile screenshot (`profileUploadId`) can answer: the upload is not usable, and why. */
const ProfileUploadErrors = Schema.Union(
  UploadNotReceivedEnvelope,
  UploadExpiredEnvelope,
  UploadAlreadyUsedEnvelope,
  UploadPurposeMismatchEnvelope,
  UploadContentMismatchEnvelope,
  UploadSizeMismatchEnvelope,
  UploadTypeMismatchEnvelope
)

export class MatchesGroup extends HttpApiGroup.make("matches")
  .add(
    HttpApiEndpoint.post("create", "/")
      .annotate(OpenApi.Summary, "Create a match")
      .setPayload(CreateMatch)
      .addSuccess(Envelope(Match), { status: 201 })
      .addError(SafetyBlockedEnvelope)
      .addError(NotFoundEnvelope)
      .addError(ProfileUploadErrors)
  )
  .add(
    HttpApiEndpoint.get("list", "/")
      .annotate(OpenApi.Summary, "List matches")
      .setUrlParams(PageParams)
      .addSuccess(Envelope(Page(Match)))
  )
  .add(
    HttpApiEndpoint.get("get", "/:matchId")
      .annotate(OpenApi.Summary, "Get a match")
      .setPath(MatchPath)
      .addSuccess(Envelope(Match))
      .addError(NotFoundEnvelope)
  )
  .add(
    HttpApiEndpoint.patch("update", "/:matchId")
      .annotate(OpenApi.Summary, "Update a match")
      .setPath(MatchPath)
      .setPayload(UpdateMatch)
      .addSuccess(Envelope(Match))
      .addError(NotFoundEnvelope)
      .addError(SafetyBlockedEnvelope)
      .addError(ProfileUploadErrors)
  )
  .add(
    HttpApiEndpoint.del("delete", "/:matchId")
      .annotate(OpenApi.Summary, "Delete a match")
      .setPath(MatchPath)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(NotFoundEnvelope)
  )
  .middleware(Authentication)
  .prefix("/matches")
  .annotate(
    OpenApi.Description,
    "The people the caller is talking to, with what was read from their profile screenshots; shared by openers and sessions."
  ) {}
