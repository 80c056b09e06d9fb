/**
 * The deliveries of inbound webhooks by their delivery id (`svix-id`), so that each is processed
 * once although senders deliver at least once. A delivery is claimed before its work, with a
 * lease its processor renews while it runs, and marked processed only after the work succeeded:
 *
 * - a redelivery of a processed one has no effect;
 * - one whose processing failed is released, and its redelivery processed again;
 * - one whose processor died meanwhile (a crash, a lost database) keeps its claim until the lease
 *   runs out, then its redelivery takes it over: no redelivery is ever answered "already
 *   processed" for work that was not done;
 * - while one is being processed, a concurrent redelivery of it is told so (`busy`).
 *
 * Rows older than WEBHOOK_DELIVERY_RETENTION_SECONDS are pruned in bounded batches.
 */
import { Clock, Duration, Effect, Layer } from "effect"
import { createHash } from "node:crypto"
import { AppConfig } from "../../core/config.ts"
import { Db } from "../../core/db/db.ts"
import { Prisma } from "../../core/db/generated/client.ts"
import { sweepEvery } from "../uploads/uploads.service.ts"

/** How long a claim holds without renewal: past it, its processor is taken for dead. */
export const DELIVERY_LEASE = Duration.seconds(60)

/** How often a running processor renews its lease (several renewals fit in one lease). */
const RENEW_EVERY = Duration.seconds(15)

/** Rows one prune statement deletes at most. */
const PRUNE_BATCH = 1000

/** The longest delivery id kept as it is (Svix's are ~30 characters). */
const MAX_KEPT_ID_CHARS = 200

/**
 * The row's key for delivery id `id`: the id, or its digest when longer than MAX_KEPT_ID_CHARS
 * (PostgreSQL's btree refuses a key over 2,704 bytes, which a signed id may exceed).
 */
const keyOf = (id: string) =>
  id.length <= MAX_KEPT_ID_CHARS ? id : `sha256:${createHash("sha256").update(id).digest("hex")}`

/** What claiming a delivery found: it is ours to process, done already, or being processed elsewhere. */
export type Claim = "claimed" | "taken-over" | "processed" | "busy"

export class WebhookDeliveries extends Effect.Service<WebhookDeliveries>()("WebhookDeliveries", {
  effect: Effect.gen(function* () {
    const db = yield* Db
    const config = yield* AppConfig

    const leaseFrom = (now: number) => new Date(now + Duration.toMillis(DELIVERY_LEASE))

    /**
     * Claims delivery `id` for processing: a new one, or one whose claim was released (its
     * processing failed) or whose lease ran out (its processor died). Concurrent claims of one id
     * give it to one of them (the insert and the conditional update are each atomic).
     */
    const claim = (deliveryId: string, source: string, type: string) =>
      Effect.gen(function* () {
        const id = keyOf(deliveryId)
        const now = yield* Clock.currentTimeMillis
        const leaseUntil = leaseFrom(now)
        const inserted = yield* db.query("webhookDeliveries.claim", (c) =>
          c.webhookDelivery.createMany({
            data: [{ id, source, type, receivedAt: new Date(now), leaseUntil }],
            skipDuplicates: true
          })
        )
        if (inserted.count > 0) return "claimed" as const
        const taken = yield* db.query("webhookDeliveries.takeOver", (c) =>
          c.webhookDelivery.updateMany({
            where: { id, processedAt: null, OR: [{ leaseUntil: null }, { leaseUntil: { lt: new Date(now) } }] },
            data: { leaseUntil }
          })
        )
        if (taken.count > 0) return "taken-over" as const
        const row = yield* db.query("webhookDeliveries.find", (c) =>
          c.webhookDelivery.findUnique({ where: { id }, select: { processedAt: true } })
        )
        // No row: pruned between the two statements; asking again claims it.
        return row !== null && row.processedAt !== null ? ("processed" as const) : ("busy" as const)
      })

    /** Extends the lease of a delivery still being processed. */
    const renew = (id: string) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        db.query("webhookDeliveries.renew", (c) =>
          c.webhookDelivery.updateMany({ where: { id, processedAt: null }, data: { leaseUntil: leaseFrom(now) } })
        )
      )

    /**
     * Runs `work` for claimed delivery `id`, renewing its lease meanwhile; marks the delivery
     * processed once `work` succeeded, releases it (for a redelivery to process) otherwise. A
     * release or a mark that does not reach the database leaves the lease to run out.
     */
    const processClaimed = <A, E, R>(deliveryId: string, work: Effect.Effect<A, E, R>) =>
      Effect.gen(function* () {
        const id = keyOf(deliveryId)
        const result = yield* Effect.scoped(
          Effect.zipRight(
            Effect.forkScoped(
              Effect.forever(
                Effect.zipRight(
                  Effect.sleep(RENEW_EVERY),
                  renew(id).pipe(
                    Effect.catchAll((error) => Effect.logWarning("Webhook delivery: lease not renewed", error))
                  )
                )
              )
            ),
            work
          )
        ).pipe(
          Effect.onError(() =>
            db
              .query("webhookDeliveries.release", (c) =>
                c.webhookDelivery.updateMany({ where: { id, processedAt: null }, data: { leaseUntil: null } })
              )
              .pipe(Effect.ignoreLogged)
          )
        )
        const processedAt = new Date(yield* Clock.currentTimeMillis)
        yield* db.query("webhookDeliveries.processed", (c) =>
          c.webhookDelivery.updateMany({ where: { id }, data: { processedAt, leaseUntil: null } })
        )
        return result
      })

    /** Deletes the deliveries received before `before`, `PRUNE_BATCH` rows per statement: how many. */
    const pruneBefore = (before: Date) =>
      Effect.gen(function* () {
        let pruned = 0
        let batch = 0
        do {
          const deleted = yield* db.sql<{ id: string }>(
            "webhookDeliveries.prune",
            Prisma.sql`
              DELETE FROM webhook_deliveries WHERE id IN (
                SELECT id FROM webhook_deliveries WHERE received_at < ${before} LIMIT ${PRUNE_BATCH}
              )
              RETURNING id`
          )
          batch = deleted.length
          pruned += batch
        } while (batch === PRUNE_BATCH)
        return pruned
      })

    /** Deletes the deliveries older than WEBHOOK_DELIVERY_RETENTION_SECONDS: how many. */
    const prune = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const pruned = yield* pruneBefore(new Date(now - config.webhookDeliveryRetentionSeconds * 1000))
      if (pruned > 0) yield* Effect.logInfo(`Webhook deliveries: ${pruned} older than the retention pruned`)
      return pruned
    })

    return { claim, processClaimed, prune, pruneBefore } as const
  })
}) {}

/** Prunes the webhook deliveries beside the upload sweep (every UPLOAD_SWEEP_INTERVAL_SECONDS, each api process). */
export const WebhookDeliveriesPrunerLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const config = yield* AppConfig
    const deliveries = yield* WebhookDeliveries
    yield* sweepEvery(
      Duration.seconds(config.uploads.sweepIntervalSeconds),
      deliveries.prune,
      "Prune of webhook deliveries"
    )
  })
)
