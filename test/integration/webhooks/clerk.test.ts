/**
 * Clerk webhooks over real HTTP: svix signatures on the raw body, at-least-once deliveries with
 * one effect, user sync and erasure, against the real PostgreSQL.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Clock, Effect, Fiber, Layer } from "effect"
import { randomBytes } from "node:crypto"
import { bearer, newClerkId, tokenFor } from "../../support/auth.ts"
import pg from "pg"
import { AppConfig } from "../../../src/core/config.ts"
import { WebhookDeliveries, WebhookDeliveriesPrunerLive } from "../../../src/modules/webhooks/webhook-deliveries.ts"
import { sql, TestDb, testDatabaseUrl } from "../../support/database.ts"
import { eventually } from "../../support/eventually.ts"
import { http } from "../../support/http.ts"
import { baseUrl, testConfig, testServer } from "../../support/server.ts"
import {
  clerkUserEvent,
  signBody,
  signDelivery,
  TEST_WEBHOOK_SECRET,
  type SignedDelivery
} from "../../support/webhooks.ts"

const deliver = (delivery: SignedDelivery) =>
  Effect.flatMap(baseUrl, (url) =>
    http(`${url}/api/v1/webhooks/clerk`, { method: "POST", headers: delivery.headers, body: delivery.body })
  )

const userRow = (clerkId: string) =>
  Effect.map(sql("SELECT * FROM users WHERE clerk_id = $1", [clerkId]), (rows) => rows[0])

const deliveryRows = (id: string) => sql("SELECT * FROM webhook_deliveries WHERE id = $1", [id])

/** A quoted SQL literal (for DDL, which takes no parameters). */
const literal = (text: string) => `'${text.replaceAll("'", "''")}'`

/**
 * An injected database fault, removed with the scope: the first `failures` writes of `clerkId`'s
 * user row fail (after `delayMs`), as they would on a database that went away; with `deliveryId`,
 * every change to that delivery's row fails too (its release after the failure included).
 */
const injectFault = (options: {
  readonly clerkId: string
  readonly failures?: number
  readonly delayMs?: number
  readonly deliveryId?: string
}) => {
  const name = `fault_${randomBytes(6).toString("hex")}`
  return Effect.acquireRelease(
    sql(`
      CREATE SEQUENCE ${name}_seq;
      CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $f$
      BEGIN
        IF nextval('${name}_seq') <= ${options.failures ?? 1} THEN
          PERFORM pg_sleep(${(options.delayMs ?? 0) / 1000});
          RAISE EXCEPTION 'injected fault';
        END IF;
        RETURN NEW;
      END $f$;
      CREATE TRIGGER ${name} BEFORE INSERT OR UPDATE ON users FOR EACH ROW
        WHEN (NEW.clerk_id = ${literal(options.clerkId)}) EXECUTE FUNCTION ${name}();
      CREATE FUNCTION ${name}_always() RETURNS trigger LANGUAGE plpgsql AS $f$
      BEGIN
        RAISE EXCEPTION 'injected fault';
      END $f$;
      ${
        options.deliveryId === undefined
          ? ""
          : `CREATE TRIGGER ${name} BEFORE UPDATE OR DELETE ON webhook_deliveries FOR EACH ROW
               WHEN (OLD.id = ${literal(options.deliveryId)}) EXECUTE FUNCTION ${name}_always();`
      }
    `),
    () =>
      sql(`
        DROP TRIGGER IF EXISTS ${name} ON users;
        DROP TRIGGER IF EXISTS ${name} ON webhook_deliveries;
        DROP FUNCTION ${name}();
        DROP FUNCTION ${name}_always();
        DROP SEQUENCE ${name}_seq;
      `)
  )
}

const processedOnce = { success: true, data: { processed: true, handled: true } }

const invalidSignature = {
  success: false,
  error: { code: "INVALID_SIGNATURE", message: "The webhook signature is missing, invalid or stale" }
}

layer(testServer({ db: TestDb(), config: { CLERK_WEBHOOK_SIGNING_SECRET: TEST_WEBHOOK_SECRET } }), {
  timeout: 60_000
})("Clerk webhooks", (it) => {
  it.effect("user.created creates the user with the primary email, names and image", () =>
    Effect.gen(function* () {
      const clerkId = newClerkId("hook")
      const res = yield* deliver(
        signDelivery(
          clerkUserEvent("user.created", {
            id: clerkId,
            email: `${clerkId}@Test.dev`,
            firstName: "Ada",
            lastName: "Lovelace",
            imageUrl: "https://img.clerk.test/ada.png"
          })
        )
      )
      expect(res.status).toBe(200)
      expect(res.body).toEqual({ success: true, data: { processed: true, handled: true } })
      expect(yield* userRow(clerkId)).toMatchObject({
        email: `${clerkId}@test.dev`,
        first_name: "Ada",
        last_name: "Lovelace",
        image_url: "https://img.clerk.test/ada.png"
      })
    })
  )

  it.effect("signed but odd names (NUL, a lone surrogate, controls) are stored cleaned, not a 500", () =>
    Effect.gen(function* () {
      const clerkId = newClerkId("oddhook")
      const res = yield* deliver(
        signDelivery(
          clerkUserEvent("user.created", { id: clerkId, firstName: "Ada\u0000\u0007", lastName: "Love\ud800lace" })
        )
      )
      expect(res.status).toBe(200)
      expect(yield* userRow(clerkId)).toMatchObject({ first_name: "Ada", last_name: "Love\uFFFDlace" })
    })
  )

  it.effect("user.updated changes the synced fields; an older update arriving late is ignored", () =>
    Effect.gen(function* () {
      const clerkId = newClerkId("upd")
      const now = Date.now()
      yield* deliver(
        signDelivery(clerkUserEvent("user.created", { id: clerkId, firstName: "Old", updatedAt: now - 10_000 }))
      )
      yield* deliver(signDelivery(clerkUserEvent("user.updated", { id: clerkId, firstName: "New", updatedAt: now })))
      const late = yield* deliver(
        signDelivery(clerkUserEvent("user.updated", { id: clerkId, firstName: "Stale", updatedAt: now - 5_000 }))
      )
      expect(late.status).toBe(200)
      expect(yield* userRow(clerkId)).toMatchObject({ first_name: "New" })
    })
  )

  it.effect("the same svix-id delivered twice has one effect", () =>
    Effect.gen(function* () {
      const clerkId = newClerkId("dup")
      const id = `msg_dup_${clerkId}`
      const first = yield* deliver(
        signDelivery(clerkUserEvent("user.created", { id: clerkId, firstName: "Once" }), { id })
      )
      expect(first.body).toEqual({ success: true, data: { processed: true, handled: true } })
      // The row changes in between; a replay of the old delivery must not write it back.
      yield* sql("UPDATE users SET first_name = 'Edited' WHERE clerk_id = $1", [clerkId])
      const replay = yield* deliver(
        signDelivery(
          clerkUserEvent("user.created", { id: clerkId, firstName: "Once", updatedAt: Date.now() + 60_000 }),
          {
            id
          }
        )
      )
      expect(replay.status).toBe(200)
      expect(replay.body).toEqual({ success: true, data: { processed: false, handled: false } })
      expect(yield* userRow(clerkId)).toMatchObject({ first_name: "Edited" })
      expect(yield* deliveryRows(id)).toHaveLength(1)
    })
  )

  // Before: the svix-id was the row's key as it came, and PostgreSQL's btree refuses a key over
  // 2,704 bytes: a signed delivery with a long id answered 500 at every redelivery, never processed.
  it.effect("a svix-id longer than an index holds is processed once: 200, its redelivery 200 not again", () =>
    Effect.gen(function* () {
      const clerkId = newClerkId("longid")
      // Random, so that PostgreSQL cannot compress the key under the limit.
      const id = `msg_${randomBytes(3_000).toString("base64")}`
      const event = clerkUserEvent("user.created", { id: clerkId, firstName: "Long" })
      const first = yield* deliver(signDelivery(event, { id }))
      expect({ status: first.status, body: first.body }).toEqual({ status: 200, body: processedOnce })
      expect(yield* userRow(clerkId)).toMatchObject({ first_name: "Long" })
      yield* sql("UPDATE users SET first_name = 'Edited' WHERE clerk_id = $1", [clerkId])
      const replay = yield* deliver(signDelivery(event, { id }))
      expect({ status: replay.status, body: replay.body }).toEqual({
        status: 200,
        body: { success: true, data: { processed: false, handled: false } }
      })
      expect(yield* userRow(clerkId)).toMatchObject({ first_name: "Edited" })
      // Another long id that shares the first one's beginning is another delivery.
      const later = clerkUserEvent("user.updated", { id: clerkId, firstName: "Later", updatedAt: Date.now() + 60_000 })
      const other = yield* deliver(signDelivery(later, { id: `${id}x` }))
      expect({ status: other.status, body: other.body }).toEqual({ status: 200, body: processedOnce })
      expect(yield* userRow(clerkId)).toMatchObject({ first_name: "Later" })
    })
  )

  it.effect("concurrent redeliveries of one svix-id are processed once", () =>
    Effect.gen(function* () {
      const clerkId = newClerkId("race")
      const delivery = signDelivery(clerkUserEvent("user.created", { id: clerkId, firstName: "Race" }))
      const answers = yield* Effect.all(
        Array.from({ length: 8 }, () => deliver(delivery)),
        { concurrency: "unbounded" }
      )
      expect(answers.every((answer) => answer.status === 200)).toBe(true)
      const processed = answers.filter((answer) => (answer.body as { data: { processed: boolean } }).data.processed)
      expect(processed).toHaveLength(1)
    })
  )

  // Before: the delivery's row was written before the sync and only deleted again when the sync
  // failed, so a crash or a lost database in between answered every redelivery "already processed".
  describe("a delivery is marked processed only once its work succeeded", () => {
    it.scoped("a delivery whose processing failed → 500; its redelivery is processed", () =>
      Effect.gen(function* () {
        const clerkId = newClerkId("fault")
        const delivery = signDelivery(clerkUserEvent("user.created", { id: clerkId, firstName: "Kept" }))
        const id = delivery.headers["svix-id"] ?? ""
        yield* injectFault({ clerkId })
        const failed = yield* deliver(delivery)
        expect(failed.status).toBe(500)
        expect(yield* userRow(clerkId)).toBeUndefined()
        const redelivered = yield* deliver(delivery)
        expect([redelivered.status, redelivered.body]).toEqual([200, processedOnce])
        expect(yield* userRow(clerkId)).toMatchObject({ first_name: "Kept" })
        expect(yield* deliveryRows(id)).toEqual([
          expect.objectContaining({ processed_at: expect.any(Date), lease_until: null })
        ])
      })
    )

    it.effect(
      "a claim left behind (the processing failed and so did its release, as when the process dies) → 503 while its lease runs, processed once it ran out",
      () =>
        Effect.gen(function* () {
          const clerkId = newClerkId("orphan")
          const delivery = signDelivery(clerkUserEvent("user.created", { id: clerkId, firstName: "Late" }))
          const id = delivery.headers["svix-id"] ?? ""
          const failed = yield* Effect.scoped(
            Effect.zipRight(injectFault({ clerkId, deliveryId: id }), deliver(delivery))
          )
          expect(failed.status).toBe(500)
          expect(yield* deliveryRows(id)).toEqual([
            expect.objectContaining({ processed_at: null, lease_until: expect.any(Date) })
          ])
          // Its processor may still be at work: not "already processed", not processed twice at once.
          const meanwhile = yield* deliver(delivery)
          expect(meanwhile.status).toBe(503)
          expect(meanwhile.body).toMatchObject({ success: false, error: { code: "SERVICE_UNAVAILABLE" } })
          expect(yield* userRow(clerkId)).toBeUndefined()
          // The lease ran out (a minute without renewal): its processor is gone.
          yield* sql("UPDATE webhook_deliveries SET lease_until = lease_until - interval '2 minutes' WHERE id = $1", [
            id
          ])
          const redelivered = yield* deliver(delivery)
          expect([redelivered.status, redelivered.body]).toEqual([200, processedOnce])
          expect(yield* userRow(clerkId)).toMatchObject({ first_name: "Late" })
          const again = yield* deliver(delivery)
          expect(again.body).toEqual({ success: true, data: { processed: false, handled: false } })
        }),
      20_000
    )

    it.scoped(
      "a redelivery while the first is being processed waits for it: the first fails (500), the redelivery processes it (200)",
      () =>
        Effect.gen(function* () {
          const clerkId = newClerkId("waiter")
          const delivery = signDelivery(clerkUserEvent("user.created", { id: clerkId, firstName: "Second" }))
          const id = delivery.headers["svix-id"] ?? ""
          // The first processing's sync waits a second, then fails; later writes go through.
          yield* injectFault({ clerkId, delayMs: 1000 })
          const first = yield* Effect.fork(deliver(delivery))
          yield* eventually(deliveryRows(id), (rows) => rows.length === 1, "the first delivery's claim")
          const second = yield* deliver(delivery)
          expect((yield* Fiber.join(first)).status).toBe(500)
          expect([second.status, second.body]).toEqual([200, processedOnce])
          expect(yield* userRow(clerkId)).toMatchObject({ first_name: "Second" })
        })
    )
  })

  it.effect(
    "concurrent deliveries of one user's updates: the newest applied wins, whatever the order they land in",
    () =>
      Effect.gen(function* () {
        const now = Date.now()
        // Rounds of ten updates at once, each newer than the one before: the newest must be on the row.
        for (let round = 0; round < 5; round++) {
          const clerkId = newClerkId("newest")
          const answers = yield* Effect.all(
            Array.from({ length: 10 }, (_, i) =>
              deliver(
                signDelivery(
                  clerkUserEvent(i % 2 === 0 ? "user.updated" : "user.created", {
                    id: clerkId,
                    firstName: `Version ${i}`,
                    updatedAt: now + i
                  })
                )
              )
            ),
            { concurrency: "unbounded" }
          )
          expect(answers.map((answer) => answer.status)).toEqual(Array.from({ length: 10 }, () => 200))
          const row = yield* userRow(clerkId)
          expect(row).toMatchObject({ first_name: "Version 9" })
          expect((row?.["clerk_updated_at"] as Date).getTime()).toBe(now + 9)
        }
      })
  )

  it.effect("one email delivered for several accounts at once: 200 to each, one account holds it, no 500", () =>
    Effect.gen(function* () {
      for (let round = 0; round < 5; round++) {
        const email = `${newClerkId("shared")}@test.dev`
        const clerkIds = Array.from({ length: 4 }, () => newClerkId("sharer"))
        const answers = yield* Effect.all(
          clerkIds.map((id) => deliver(signDelivery(clerkUserEvent("user.created", { id, email })))),
          { concurrency: "unbounded" }
        )
        expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 200])
        const rows = yield* sql("SELECT clerk_id, email FROM users WHERE clerk_id = ANY($1)", [clerkIds])
        expect(rows).toHaveLength(4)
        expect(rows.filter((row) => row["email"] === email)).toHaveLength(1)
      }
    })
  )

  it.effect("two accounts swapping their emails at once: 200 to both, each ends with the other's", () =>
    Effect.gen(function* () {
      const now = Date.now()
      for (let round = 0; round < 10; round++) {
        const [a, b] = [newClerkId("swapa"), newClerkId("swapb")]
        const [emailA, emailB] = [`${a}@test.dev`, `${b}@test.dev`]
        yield* deliver(signDelivery(clerkUserEvent("user.created", { id: a, email: emailA, updatedAt: now })))
        yield* deliver(signDelivery(clerkUserEvent("user.created", { id: b, email: emailB, updatedAt: now })))
        const answers = yield* Effect.all(
          [
            deliver(signDelivery(clerkUserEvent("user.updated", { id: a, email: emailB, updatedAt: now + 1 }))),
            deliver(signDelivery(clerkUserEvent("user.updated", { id: b, email: emailA, updatedAt: now + 1 })))
          ],
          { concurrency: "unbounded" }
        )
        expect(answers.map((answer) => answer.status)).toEqual([200, 200])
        // Whichever lands first, the other then takes its new email back from it: a swap.
        const rows = yield* sql("SELECT clerk_id, email FROM users WHERE clerk_id = ANY($1) ORDER BY clerk_id", [
          [a, b]
        ])
        expect(rows).toEqual([
          { clerk_id: a, email: emailB },
          { clerk_id: b, email: emailA }
        ])
      }
    })
  )

  it.effect("signed events with values PostgreSQL cannot store → 200, ignored, nothing written, no 500", () =>
    Effect.gen(function* () {
      const clerkId = newClerkId("unstorable")
      const deliveries = [
        // NUL in the event type (stored with the delivery)
        { ...clerkUserEvent("user.created", { id: clerkId }), type: "user.\u0000created" },
        // NUL in the Clerk id, on each of the user events
        clerkUserEvent("user.created", { id: `${clerkId}\u0000` }),
        { type: "user.deleted", object: "event", data: { id: `${clerkId}\u0000`, object: "user", deleted: true } },
        // an empty Clerk id, and one no Clerk token could carry
        clerkUserEvent("user.created", { id: "" }),
        clerkUserEvent("user.created", { id: `${clerkId}${"x".repeat(300)}` }),
        // an updated_at beyond what a date holds, either way
        clerkUserEvent("user.updated", { id: clerkId, updatedAt: 1e20 }),
        clerkUserEvent("user.updated", { id: clerkId, updatedAt: -1e20 })
      ]
      for (const event of deliveries) {
        const res = yield* deliver(signDelivery(event))
        expect({ type: event.type, status: res.status, body: res.body }).toEqual({
          type: event.type,
          status: 200,
          body: { success: true, data: { processed: true, handled: false } }
        })
      }
      expect(yield* sql("SELECT id FROM users WHERE clerk_id LIKE $1 OR clerk_id = ''", [`${clerkId}%`])).toEqual([])
    })
  )

  // Before: a token's email kept its capitals while the webhook lower-cased the same address, so
  // one address could sit on two accounts in two spellings (the unique index saw two values).
  it.effect(
    "a token's email is stored in lower case, as a webhook's: an address moved by Clerk leaves the first account",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const [first, second] = [newClerkId("casefirst"), newClerkId("casesecond")]
        const me = yield* http(`${url}/api/v1/users/me`, {
          headers: bearer(tokenFor({ clerkId: first, email: `Mixed.${first}@Example.COM` }))
        })
        expect(me.status).toBe(200)
        expect(me.body).toMatchObject({ data: { email: `mixed.${first}@example.com` } })
        const moved = yield* deliver(
          signDelivery(clerkUserEvent("user.created", { id: second, email: `MIXED.${first}@example.com` }))
        )
        expect(moved.status).toBe(200)
        expect(
          yield* sql("SELECT clerk_id, email FROM users WHERE clerk_id = ANY($1) ORDER BY clerk_id", [[first, second]])
        ).toEqual([
          { clerk_id: first, email: null },
          { clerk_id: second, email: `mixed.${first}@example.com` }
        ])
      })
  )

  describe("pruning", () => {
    const deliveries = WebhookDeliveries.Default.pipe(Layer.provide(TestDb()))

    /** `count` deliveries named `<prefix><kind>_<n>`, received `age` ago (an SQL interval), half of them never processed. */
    const received = (prefix: string, kind: string, count: number, age: string) =>
      sql(
        `INSERT INTO webhook_deliveries (id, source, type, received_at, processed_at)
         SELECT $1 || $2 || '_' || g, 'clerk', 'user.updated', (now() AT TIME ZONE 'UTC') - $3::interval,
                CASE WHEN g % 2 = 0 THEN (now() AT TIME ZONE 'UTC') - $3::interval END
         FROM generate_series(1, $4::int) AS g`,
        [prefix, kind, age, count]
      )

    const left = (prefix: string) =>
      sql(
        `SELECT split_part(substr(id, length($1) + 1), '_', 1) AS kind, count(*)::int AS count
         FROM webhook_deliveries WHERE starts_with(id, $1) GROUP BY 1 ORDER BY 1`,
        [prefix]
      )

    // On the real clock: the retention is counted from it (the test's own clock stands at 1970).
    it.effect("deliveries older than the retention (3 days) go, in batches; younger ones stay", () =>
      Effect.gen(function* () {
        const prefix = `msg_prune_${randomBytes(4).toString("hex")}_`
        yield* received(prefix, "old", 2500, "4 days")
        yield* received(prefix, "recent", 10, "2 days 23 hours")
        yield* received(prefix, "new", 10, "0 seconds")
        const pruned = yield* Effect.flatMap(WebhookDeliveries, (service) => service.prune).pipe(
          Effect.provide(deliveries)
        )
        expect(pruned).toBeGreaterThanOrEqual(2500)
        expect(yield* left(prefix)).toEqual([
          { kind: "new", count: 10 },
          { kind: "recent", count: 10 }
        ])
      }).pipe(Effect.withClock(Clock.make()))
    )

    it.effect(
      "the pruner runs every UPLOAD_SWEEP_INTERVAL_SECONDS; WEBHOOK_DELIVERY_RETENTION_SECONDS sets the age",
      () =>
        Effect.gen(function* () {
          const prefix = `msg_pruner_${randomBytes(4).toString("hex")}_`
          yield* received(prefix, "old", 3, "2 days 1 hour")
          yield* received(prefix, "recent", 3, "1 day 23 hours")
          yield* Layer.build(
            WebhookDeliveriesPrunerLive.pipe(
              Layer.provide(deliveries),
              Layer.provide(AppConfig.Default),
              Layer.provide(
                testConfig({
                  UPLOAD_SWEEP_INTERVAL_SECONDS: "1",
                  WEBHOOK_DELIVERY_RETENTION_SECONDS: String(2 * 86_400)
                })
              )
            )
          )
          yield* eventually(left(prefix), (rows) => rows.length === 1, "the old deliveries pruned")
          expect(yield* left(prefix)).toEqual([{ kind: "recent", count: 3 }])
        }).pipe(Effect.scoped, Effect.withClock(Clock.make()))
    )
  })

  describe("refused deliveries write nothing", () => {
    it.effect("a tampered body → 400 INVALID_SIGNATURE", () =>
      Effect.gen(function* () {
        const clerkId = newClerkId("tamper")
        const signed = signDelivery(clerkUserEvent("user.created", { id: clerkId, firstName: "Real" }))
        const res = yield* deliver({ ...signed, body: signed.body.replace("Real", "Fake") })
        expect(res.status).toBe(400)
        expect(res.body).toEqual(invalidSignature)
        expect(yield* userRow(clerkId)).toBeUndefined()
        expect(yield* deliveryRows(signed.headers["svix-id"] ?? "")).toHaveLength(0)
      })
    )

    it.effect("a stale timestamp (replayed capture) → 400 INVALID_SIGNATURE", () =>
      Effect.gen(function* () {
        const clerkId = newClerkId("stale")
        const res = yield* deliver(
          signDelivery(clerkUserEvent("user.created", { id: clerkId }), {
            timestamp: Math.floor(Date.now() / 1000) - 60 * 60
          })
        )
        expect(res.status).toBe(400)
        expect(res.body).toEqual(invalidSignature)
        expect(yield* userRow(clerkId)).toBeUndefined()
      })
    )

    it.effect("another secret, or no signature headers → 400 INVALID_SIGNATURE", () =>
      Effect.gen(function* () {
        const clerkId = newClerkId("wrongkey")
        const event = clerkUserEvent("user.created", { id: clerkId })
        const wrongKey = yield* deliver(signDelivery(event, { secret: "whsec_d3Jvbmcgc2VjcmV0IGZvciB0ZXN0cw==" }))
        expect(wrongKey.status).toBe(400)
        const unsigned = yield* deliver({
          body: JSON.stringify(event),
          headers: { "content-type": "application/json" }
        })
        expect(unsigned.status).toBe(400)
        expect(unsigned.body).toEqual(invalidSignature)
        expect(yield* userRow(clerkId)).toBeUndefined()
      })
    )
  })

  it.effect("an unknown event type → 2xx, ignored", () =>
    Effect.gen(function* () {
      const res = yield* deliver(signDelivery({ type: "session.created", object: "event", data: { id: "sess_1" } }))
      expect(res.status).toBe(200)
      expect(res.body).toEqual({ success: true, data: { processed: true, handled: false } })
    })
  )

  // Before: 400 INVALID_SIGNATURE for a body whose signature is valid, and Svix retried it for a day.
  it.effect("a signed body that is not an event (`null`, `{}`, `[]`, no type) → 200, ignored, nothing recorded", () =>
    Effect.gen(function* () {
      for (const body of [null, {}, [], 7, "user.created", { object: "event", data: {} }, { type: 7, data: {} }]) {
        const delivery = signDelivery(body)
        const res = yield* deliver(delivery)
        expect([JSON.stringify(body), res.status, res.body]).toEqual([
          JSON.stringify(body),
          200,
          { success: true, data: { processed: true, handled: false } }
        ])
        expect(yield* deliveryRows(delivery.headers["svix-id"] ?? "")).toEqual([])
      }
    })
  )

  it.effect("a signed body that is empty or not JSON → 200, ignored", () =>
    Effect.gen(function* () {
      for (const body of ["", "not json", '{"type":"user.created"']) {
        const res = yield* deliver(signBody(body))
        expect([body, res.status, res.body]).toEqual([
          body,
          200,
          { success: true, data: { processed: true, handled: false } }
        ])
      }
    })
  )

  it.effect("`null` with a wrong signature, or signed for another body → 400 INVALID_SIGNATURE", () =>
    Effect.gen(function* () {
      const wrongKey = yield* deliver(signBody("null", { secret: "whsec_d3Jvbmcgc2VjcmV0IGZvciB0ZXN0cw==" }))
      expect([wrongKey.status, wrongKey.body]).toEqual([400, invalidSignature])
      const signed = signBody("{}")
      const swapped = yield* deliver({ ...signed, body: "null" })
      expect([swapped.status, swapped.body]).toEqual([400, invalidSignature])
    })
  )

  it.effect("user.deleted erases the account; its token no longer works; later updates do not resurrect it", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const clerkId = newClerkId("del")
      const token = tokenFor({ clerkId, email: `${clerkId}@test.dev` })
      expect((yield* http(`${url}/api/v1/users/me`, { headers: bearer(token) })).status).toBe(200)
      const deleted = yield* deliver(
        signDelivery({ type: "user.deleted", object: "event", data: { id: clerkId, object: "user", deleted: true } })
      )
      expect(deleted.body).toEqual({ success: true, data: { processed: true, handled: true } })
      expect(yield* userRow(clerkId)).toBeUndefined()
      const after = yield* http(`${url}/api/v1/users/me`, { headers: bearer(token) })
      expect(after.status).toBe(401)
      yield* deliver(signDelivery(clerkUserEvent("user.updated", { id: clerkId, firstName: "Zombie" })))
      expect(yield* userRow(clerkId)).toBeUndefined()
    })
  )

  it.scoped(
    "a user.deleted whose sender hangs up mid-erasure is still carried out: the account is gone, its redelivery answers 200",
    () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const clerkId = newClerkId("hangup")
        const token = tokenFor({ clerkId, email: `${clerkId}@test.dev` })
        expect((yield* http(`${url}/api/v1/users/me`, { headers: bearer(token) })).status).toBe(200)
        // The erasure's first write (its tombstone) waits for this lock: the sender gives up meanwhile.
        const holder = yield* Effect.acquireRelease(
          Effect.promise(async () => {
            const client = new pg.Client({ connectionString: testDatabaseUrl() })
            await client.connect()
            await client.query("BEGIN")
            await client.query("LOCK TABLE erased_accounts IN SHARE MODE")
            return client
          }),
          (client) => Effect.promise(() => client.query("ROLLBACK").then(() => client.end()))
        )
        const delivery = signDelivery({
          type: "user.deleted",
          object: "event",
          data: { id: clerkId, object: "user", deleted: true }
        })
        const sender = new AbortController()
        const sent = fetch(`${url}/api/v1/webhooks/clerk`, {
          method: "POST",
          headers: delivery.headers,
          body: delivery.body,
          signal: sender.signal
        }).catch(() => "aborted" as const)
        yield* eventually(
          sql<{ waiting: boolean }>(
            "SELECT count(*) > 0 AS waiting FROM pg_locks WHERE relation = 'erased_accounts'::regclass AND NOT granted"
          ),
          (rows) => rows[0]?.waiting === true,
          "the erasure waiting for the lock"
        )
        sender.abort()
        expect(yield* Effect.promise(() => sent)).toBe("aborted")
        // A request on a new connection is answered after the server saw the first one close.
        expect((yield* http(`${url}/health/live`)).status).toBe(200)
        yield* Effect.promise(() => holder.query("ROLLBACK"))
        const redelivered = yield* deliver(delivery)
        expect(redelivered.status).toBe(200)
        yield* eventually(userRow(clerkId), (row) => row === undefined, "the account erased")
        expect(
          yield* sql(
            "SELECT 1 FROM erased_accounts WHERE user_id IS NOT NULL AND clerk_id_hash = encode(sha256($1::bytea), 'hex')",
            [clerkId]
          )
        ).toHaveLength(1)
      }),
    20_000
  )
})

layer(testServer({ db: TestDb() }), { timeout: 60_000 })("Clerk webhooks without a signing secret", (it) => {
  it.effect("answer 503 SERVICE_UNAVAILABLE and write nothing", () =>
    Effect.gen(function* () {
      const clerkId = newClerkId("nosecret")
      const res = yield* deliver(signDelivery(clerkUserEvent("user.created", { id: clerkId })))
      expect(res.status).toBe(503)
      expect(res.body).toEqual({
        success: false,
        error: { code: "SERVICE_UNAVAILABLE", message: "Clerk webhooks are not configured on this server" }
      })
      expect(yield* userRow(clerkId)).toBeUndefined()
    })
  )
})
