/**
 * Ownership (BOLA) rule for every module: a resource is looked up together with its owner, and
 * another user's resource answers exactly like a missing one (404 NOT_FOUND, same message), so
 * ids cannot be probed. Prefer filtering by owner in the query itself; this guards rows read by id.
 */
import { Effect } from "effect"
import { NotFound } from "../domain/errors.ts"

export const notFound = (what: string) => new NotFound({ message: `${what} not found` })

export const ownedBy =
  (userId: string, what: string) =>
  <A extends { readonly userId: string }>(row: A | null | undefined): Effect.Effect<A, NotFound> =>
    row !== null && row !== undefined && row.userId === userId ? Effect.succeed(row) : Effect.fail(notFound(what))
