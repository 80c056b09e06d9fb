/**
 * Two users with their tokens, provisioned through the API: the fixture every ownership (BOLA)
 * test starts from. Each call makes new Clerk ids, so test files never share users.
 */
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import { clerkIdHash } from "../../src/modules/users/users.repo.ts"
import { bearer, newClerkId, tokenFor } from "./auth.ts"
import { holdingLocks, sql } from "./database.ts"
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

// The tombstone and the user's row gone (with everything that cascades), or only its uploads' rows
// (an erasure at its uploads' step), in one statement.
const erasing = (rows: "user" | "uploads") =>
  `WITH tombstone AS (INSERT INTO erased_accounts (clerk_id_hash, user_id) VALUES ($1, $2))
   ${rows === "user" ? "DELETE FROM users WHERE id = $2" : "DELETE FROM uploads WHERE user_id = $2"}`

/**
 * The account erased by another api instance, as that one's erasure leaves it: its tombstone
 * written, its row gone (with everything that cascades). This instance's cache still maps the
 * token, so its next request is authenticated and meets the erasure at its first write.
 */
export const eraseElsewhere = (user: TestUser) =>
  Effect.asVoid(sql(erasing("user"), [clerkIdHash(user.clerkId), user.id]))

/**
 * `eraseElsewhere` (or, `rows: "uploads"`, its step that deletes the uploads' rows) in a
 * transaction held open until `commit`: until then no other transaction sees the tombstone, and a
 * write of the rows it deletes waits for it.
 */
export const erasingElsewhere = (user: TestUser, rows: "user" | "uploads" = "user") =>
  holdingLocks(erasing(rows), [clerkIdHash(user.clerkId), user.id])

/** What an erased account's requests are refused with (401). */
export const ERASED = {
  code: "UNAUTHORIZED",
  message: "This account was erased",
  details: { reason: "account-erased" }
}

/** The RPC `Exit` of request `requestId` refused as the account was erased (`Unauthorized` account-erased). */
export const erasedRpcExit = (requestId: string) => ({
  _tag: "Exit",
  requestId,
  exit: {
    _tag: "Failure",
    cause: { _tag: "Fail", error: { _tag: "Unauthorized", message: ERASED.message, details: ERASED.details } }
  }
})
