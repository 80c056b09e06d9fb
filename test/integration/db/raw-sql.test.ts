/**
 * `Db.sql`, the hot raw statements sent on the pool without Prisma's client: a `timestamp` (UTC,
 * as Prisma stores a DateTime) is written and read as UTC whatever the process's time zone, as
 * the client does, so rows written either way agree.
 */
import { expect, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { Db } from "../../../src/core/db/db.ts"
import { Prisma } from "../../../src/core/db/generated/client.ts"
import { testDatabaseUrl } from "../../support/database.ts"

/** Runs `effect` with the process in another time zone (Node applies a change of TZ at once). */
const inTimeZone = <A, E, R>(zone: string, effect: Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const previous = process.env["TZ"]
      process.env["TZ"] = zone
      return previous
    }),
    () => effect,
    (previous) =>
      Effect.sync(() => {
        if (previous === undefined) delete process.env["TZ"]
        else process.env["TZ"] = previous
      })
  )

it.effect("a timestamp goes through Db.sql as UTC, as through Prisma's client, in any time zone", () =>
  inTimeZone(
    "Asia/Tokyo",
    Effect.gen(function* () {
      const db = yield* Db
      const at = new Date("2026-12-06T10:11:12.345Z")
      const read = Prisma.sql`SELECT '2026-12-06 10:11:12.345'::timestamp AS at`
      const written = Prisma.sql`SELECT to_char(${at}::timestamp, 'YYYY-MM-DD HH24:MI:SS.MS') AS text`
      const [raw] = yield* db.sql<{ at: Date }>("test.read", read)
      const [viaClient] = yield* db.query("test.read", (c) => c.$queryRaw<Array<{ at: Date }>>(read))
      expect(raw?.at.toISOString()).toBe(at.toISOString())
      expect(viaClient?.at.toISOString()).toBe(at.toISOString())
      const [stored] = yield* db.sql<{ text: string }>("test.write", written)
      const [storedViaClient] = yield* db.query("test.write", (c) => c.$queryRaw<Array<{ text: string }>>(written))
      expect(stored?.text).toBe("2026-12-06 10:11:12.345")
      expect(storedViaClient?.text).toBe("2026-12-06 10:11:12.345")
    })
  ).pipe(
    Effect.provide(Db.postgres({ url: Redacted.make(testDatabaseUrl()), poolMax: 1, migrate: false })),
    Effect.scoped
  )
)
