/**
 * Two users with their tokens, provisioned through the API: the fixture every ownership (BOLA)
 * test starts from. Each call makes new Clerk ids, so test files never share users.
 */
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { bearer, newClerkId, tokenFor } from "./auth.ts"
import { http } from "./http.ts"

export interface TestUser {
  readonly clerkId: string
  readonly id: string
  readonly token: string
  readonly headers: Record<string, string>
}

export const provisionUser = (baseUrl: string, label: string) =>
  Effect.gen(function* () {
    const clerkId = newClerkId(label)
    const token = tokenFor({ clerkId, email: `${clerkId}@test.dev`, firstName: label })
    const res = yield* http(`${baseUrl}/api/v1/users/me`, { headers: bearer(token) })
    if (res.status !== 200) return yield* Effect.dieMessage(`could not provision ${label}: ${res.status} ${res.text}`)
    const body = res.body as { data: { id: string } }
    return { clerkId, id: body.data.id, token, headers: bearer(token) } satisfies TestUser
  })

export const twoUsers = (baseUrl: string) =>
  Effect.all({ alice: provisionUser(baseUrl, "alice"), bob: provisionUser(baseUrl, "bob") })

/** DELETE /users/me as `user` (another device): 204 once the erasure is complete. */
export const eraseAccount = (url: string, user: TestUser) =>
  Effect.gen(function* () {
    const res = yield* http(`${url}/api/v1/users/me`, { method: "DELETE", headers: user.headers })
    expect(res.status).toBe(204)
  })

/** What an erased account's requests are refused with (401). */
export const ERASED = {
  code: "UNAUTHORIZED",
  message: "This account was erased",
  details: { reason: "account-erased" }
}
