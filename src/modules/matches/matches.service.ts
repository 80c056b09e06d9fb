/** Matches: a person's profile as the user knows it, owned by that user; the input to openers and sessions. */
import { Effect, Option, Schema } from "effect"
import { notFound } from "../../core/ownership.ts"
import { toPage } from "../../core/pagination.ts"
import { accountErased, SafetyBlocked } from "../../domain/errors.ts"
import { type CreateMatch, ExtractedProfile, type Match as MatchView, type UpdateMatch } from "../../domain/matches.ts"
import { impliesMinor } from "../openers/safety.ts"
import { UploadsService } from "../uploads/uploads.service.ts"
import { Prisma } from "../../core/db/generated/client.ts"
import { type Match, MatchesRepo } from "./matches.repo.ts"

const minorRefused = () =>
  new SafetyBlocked({
    message: "This profile states or implies someone under 18: Wingmate does not help with that",
    details: { reason: "minor" }
  })

export const extractedOf = (match: Match): ExtractedProfile | null =>
  match.extractedProfile === null
    ? null
    : Option.getOrNull(Schema.decodeUnknownOption(ExtractedProfile)(match.extractedProfile))

export const toMatchView = (match: Match): MatchView => ({
  id: match.id,
  name: match.name,
  bio: match.bio,
  interests: match.interests,
  notes: match.notes,
  platform: match.platform,
  profileUploadId: match.profileUploadId,
  extractedProfile: extractedOf(match),
  createdAt: match.createdAt,
  updatedAt: match.updatedAt
})

/** Every text of a match that could state an age, the screenshot's reading included. */
export const matchTexts = (match: Match): ReadonlyArray<string | null> => {
  const extracted = extractedOf(match)
  return [
    match.name,
    match.bio,
    match.notes,
    ...match.interests,
    ...(extracted === null
      ? []
      : [
          extracted.name,
          extracted.bio,
          ...extracted.prompts,
          ...extracted.interests,
          extracted.age === null ? null : `age ${extracted.age}`
        ])
  ]
}

export class MatchesService extends Effect.Service<MatchesService>()("MatchesService", {
  effect: Effect.gen(function* () {
    const repo = yield* MatchesRepo
    const uploads = yield* UploadsService

    const get = (userId: string, id: string) =>
      Effect.flatMap(repo.find(userId, id), (match) =>
        match === null ? Effect.fail(notFound("Match")) : Effect.succeed(match)
      )

    const create = (userId: string, input: CreateMatch) =>
      Effect.gen(function* () {
        if (impliesMinor([input.name, input.bio, input.notes, ...(input.interests ?? [])])) return yield* minorRefused()
        if (input.profileUploadId !== undefined) yield* uploads.use(userId, input.profileUploadId, "profile")
        const match = yield* repo.create({
          userId,
          name: input.name,
          bio: input.bio ?? null,
          interests: [...(input.interests ?? [])],
          notes: input.notes ?? null,
          platform: input.platform ?? null,
          profileUploadId: input.profileUploadId ?? null
        })
        if (match === null) return yield* Effect.fail(accountErased())
        return toMatchView(match)
      })

    const update = (userId: string, id: string, patch: UpdateMatch) =>
      Effect.gen(function* () {
        const current = yield* get(userId, id)
        const next = {
          name: patch.name ?? current.name,
          bio: patch.bio === undefined ? current.bio : patch.bio,
          notes: patch.notes === undefined ? current.notes : patch.notes,
          interests: patch.interests === undefined ? current.interests : [...patch.interests]
        }
        if (impliesMinor([next.name, next.bio, next.notes, ...next.interests])) return yield* minorRefused()
        const newScreenshot =
          patch.profileUploadId !== undefined &&
          patch.profileUploadId !== null &&
          patch.profileUploadId !== current.profileUploadId
        if (newScreenshot) yield* uploads.use(userId, patch.profileUploadId, "profile")
        const updated = yield* repo.update(userId, id, {
          ...next,
          ...(patch.platform === undefined ? {} : { platform: patch.platform }),
          ...(patch.profileUploadId === undefined ? {} : { profileUploadId: patch.profileUploadId }),
          // A new (or removed) screenshot is read again before the next generation.
          ...(patch.profileUploadId === undefined || patch.profileUploadId === current.profileUploadId
            ? {}
            : { extractedProfile: Prisma.DbNull })
        })
        if (updated === null) return yield* notFound("Match")
        return toMatchView(updated)
      })

    return {
      get,
      create,
      update,
      view: (userId: string, id: string) => Effect.map(get(userId, id), toMatchView),
      list: (userId: string, limit: number, cursor: string | undefined) =>
        Effect.map(repo.list(userId, limit, cursor), (rows) => toPage(rows, limit, toMatchView)),
      remove: (userId: string, id: string) =>
        Effect.flatMap(repo.remove(userId, id), (removed) => (removed ? Effect.void : Effect.fail(notFound("Match")))),
      saveExtracted: (userId: string, id: string, extracted: ExtractedProfile) =>
        repo.update(userId, id, { extractedProfile: Schema.encodeSync(ExtractedProfile)(extracted) })
    } as const
  }),
  dependencies: [MatchesRepo.Default]
}) {}
