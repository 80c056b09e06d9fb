/**
 * The Redis progress bus on this machine's Redis: the shared behaviour suite with the publisher and
 * the subscriber on two bus instances (separate connections, like two processes), then what only
 * Redis has: shared subscriptions, foreign messages on the channel, keys and their expiry, and a
 * subscriber connection that drops and comes back.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { Redis as IORedis } from "ioredis"
import { randomUUID } from "node:crypto"
import { ProgressBus, type ProgressBusOptions, progressRedisKeys } from "../../../src/core/progress/progress-bus.ts"
import {
  buildBus,
  collect,
  done,
  expectConsistent,
  feedOf,
  type Item,
  progressBusSuite,
  puller,
  seqs,
  step,
  uniqueName
} from "../../unit/core/progress/suite.ts"
import { eventually } from "../../support/eventually.ts"

const url = process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379"
const keyPrefix = `wingmate-test:progress:${process.pid}-${randomUUID().slice(0, 6)}:`

/** A connection of the test's own (admin commands, cleanup). */
const admin = new IORedis(url, { maxRetriesPerRequest: 2 })
afterAll(async () => {
  const keys = await admin.keys(`${keyPrefix}*`)
  if (keys.length > 0) await admin.del(...keys)
  await admin.quit()
})

/** One "process": its command connection (reconnecting after 300 ms) and a bus on it. */
const instance = (options?: ProgressBusOptions) =>
  Effect.gen(function* () {
    const connectionName = `progress-test-${randomUUID().slice(0, 8)}`
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => new IORedis(url, { maxRetriesPerRequest: 2, retryStrategy: () => 300 })),
      (client) => Effect.promise(() => client.quit())
    )
    const bus = yield* buildBus(ProgressBus.redis(client, { ...options, keyPrefix, connectionName }))
    return { bus, client, connectionName }
  })

const pair = (options?: ProgressBusOptions) =>
  Effect.map(Effect.all([instance(options), instance(options)]), ([a, b]) => ({
    publisher: a.bus,
    subscriber: b.bus
  }))

const redis = <A>(run: (client: IORedis) => Promise<A>) => Effect.promise(() => run(admin))

const numsub = (channel: string) =>
  redis((client) => client.pubsub("NUMSUB", channel)).pipe(Effect.map((reply) => Number(reply[1])))

/** Kills the subscriber connection of the instance named `connectionName`. */
const killSubscriber = (connectionName: string) =>
  redis(async (client) => {
    const list = String(await client.client("LIST"))
    const line = list.split("\n").find((entry) => entry.includes(` name=${connectionName} `))
    const id = line?.match(/^id=(\d+)/)?.[1]
    if (id === undefined) throw new Error(`no connection named ${connectionName}`)
    await client.client("KILL", "ID", id)
  })

progressBusSuite("ProgressBus.redis", pair)

describe("ProgressBus.redis, across processes", () => {
  it.scopedLive("two instances on separate connections see each other's events", () =>
    Effect.gen(function* () {
      const a = yield* instance()
      const b = yield* instance()
      expect(a.bus.kind).toBe("redis")
      const name = uniqueName()
      const onA = yield* puller(feedOf(a.bus, name).subscribe("job"))
      const onB = yield* puller(feedOf(b.bus, name).subscribe("job"))
      yield* onA.next
      yield* onB.next
      yield* feedOf(a.bus, name).publish("job", step(1))
      yield* feedOf(b.bus, name).publish("job", step(2))
      yield* feedOf(a.bus, name).publish("job", done)
      for (const listener of [onA, onB]) {
        expect(yield* listener.take(3)).toMatchObject([
          { seq: 1, event: step(1) },
          { seq: 2, event: step(2) },
          { seq: 3, event: done, terminal: true }
        ])
        expect(yield* listener.ended).toBe(true)
      }
    })
  )

  it.scopedLive("local listeners of a topic share one Redis subscription per process, released with the last", () =>
    Effect.gen(function* () {
      const a = yield* instance()
      const b = yield* instance()
      const name = uniqueName()
      const channel = progressRedisKeys(keyPrefix, `${name}:job`).channel
      const listeners = [
        ...(yield* Effect.forEach([1, 2, 3, 4, 5], () => puller(feedOf(a.bus, name).subscribe("job")))),
        ...(yield* Effect.forEach([1, 2, 3], () => puller(feedOf(b.bus, name).subscribe("job"))))
      ]
      yield* Effect.forEach(listeners, (listener) => listener.next)
      expect(yield* numsub(channel)).toBe(2)
      yield* feedOf(a.bus, name).publish("job", step(1))
      yield* feedOf(a.bus, name).publish("job", done)
      for (const listener of listeners) {
        expect(seqs(yield* listener.take(2))).toEqual([1, 2])
        expect(yield* listener.ended).toBe(true)
      }
      yield* eventually(numsub(channel), (count) => count === 0, `no subscriber left on ${channel}`)
      // And a new listener subscribes again.
      const again = yield* puller(feedOf(b.bus, name).subscribe("job", { afterSeq: 1 }))
      expect(seqs(yield* again.take(1))).toEqual([2])
    })
  )

  it.scopedLive("foreign messages on the channel are skipped", () =>
    Effect.gen(function* () {
      const { publisher, subscriber } = yield* pair()
      const name = uniqueName()
      const channel = progressRedisKeys(keyPrefix, `${name}:job`).channel
      const listener = yield* puller(feedOf(subscriber, name).subscribe("job"))
      yield* listener.next
      yield* redis((client) => client.publish(channel, "not json"))
      yield* redis((client) => client.publish(channel, '{"seq":"x","event":{}}'))
      yield* feedOf(publisher, name).publish("job", step(1))
      expect(yield* listener.next).toMatchObject({ _tag: "Event", seq: 1, event: step(1) })
    })
  )

  it.scopedLive("keys: one hash and one bounded buffer per topic, expiring after the ttl; clear deletes them", () =>
    Effect.gen(function* () {
      const { publisher } = yield* pair({ replayLimit: 3, ttl: "1 hour" })
      const name = uniqueName()
      const keys = progressRedisKeys(keyPrefix, `${name}:job`)
      yield* Effect.forEach([1, 2, 3, 4, 5], (n) =>
        feedOf(publisher, name).publish("job", step(n), { state: { steps: n, text: "" } })
      )
      expect(yield* redis((client) => client.hgetall(keys.meta))).toEqual({
        seq: "5",
        state: '{"steps":5,"text":""}',
        terminal: "0"
      })
      expect(yield* redis((client) => client.zrange(keys.log, 0, -1))).toEqual(
        [3, 4, 5].map((n) => `{"seq":${n},"terminal":false,"event":{"_tag":"Step","n":${n}}}`)
      )
      for (const key of [keys.meta, keys.log]) {
        const ttl = yield* redis((client) => client.pttl(key))
        expect(ttl).toBeGreaterThan(3_590_000)
        expect(ttl).toBeLessThanOrEqual(3_600_000)
      }
      yield* feedOf(publisher, name).clear("job")
      expect(yield* redis((client) => client.exists(keys.meta, keys.log))).toBe(0)
    })
  )

  it.scopedLive("a dropped subscriber connection resubscribes and fills the gap from the buffer", () =>
    Effect.gen(function* () {
      const a = yield* instance()
      const b = yield* instance()
      const name = uniqueName()
      const listener = yield* puller(feedOf(b.bus, name).subscribe("job"))
      yield* listener.next
      yield* feedOf(a.bus, name).publish("job", step(1))
      expect(seqs(yield* listener.take(1))).toEqual([1])
      yield* killSubscriber(b.connectionName)
      // Published while b's subscriber is away (it reconnects after 300 ms).
      yield* Effect.forEach([2, 3, 4, 5], (n) => feedOf(a.bus, name).publish("job", step(n)))
      // Nothing else is published: the reconnection itself triggers the catch-up.
      const caughtUp = yield* listener.take(4)
      expect(seqs(caughtUp)).toEqual([2, 3, 4, 5])
      yield* feedOf(a.bus, name).publish("job", done)
      expect(seqs(yield* listener.take(1))).toEqual([6])
      expect(yield* listener.ended).toBe(true)
    })
  )

  it.scopedLive("a gap larger than the buffer after a reconnection gets a fresh snapshot", () =>
    Effect.gen(function* () {
      const a = yield* instance({ replayLimit: 3 })
      const b = yield* instance({ replayLimit: 3 })
      const name = uniqueName()
      const listener = yield* puller(feedOf(b.bus, name).subscribe("job"))
      yield* listener.next
      yield* killSubscriber(b.connectionName)
      yield* Effect.forEach([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], (n) =>
        feedOf(a.bus, name).publish("job", step(n), { state: { steps: n, text: "" } })
      )
      expect(yield* listener.next).toEqual({
        _tag: "Snapshot",
        topic: "job",
        seq: 10,
        state: Option.some({ steps: 10, text: "" }),
        terminal: false
      })
      yield* feedOf(a.bus, name).publish("job", done)
      expect(seqs(yield* listener.take(1))).toEqual([11])
    })
  )

  it.scopedLive("subscriptions set up during a reconnection lose nothing either", () =>
    Effect.gen(function* () {
      const a = yield* instance()
      const b = yield* instance()
      const name = uniqueName()
      const warm = yield* puller(feedOf(b.bus, name).subscribe("warm"))
      yield* warm.next
      yield* killSubscriber(b.connectionName)
      const writer = yield* Effect.fork(
        Effect.zipRight(
          Effect.forEach(
            Array.from({ length: 40 }, (_, i) => i + 1),
            (n) => Effect.zipRight(feedOf(a.bus, name).publish("job", step(n)), Effect.sleep("10 millis"))
          ),
          feedOf(a.bus, name).publish("job", done)
        )
      )
      const items: ReadonlyArray<Item> = yield* collect(feedOf(b.bus, name).subscribe("job", { afterSeq: 0 }))
      yield* writer.await
      expect(expectConsistent(items, 0)).toBe(41)
    })
  )
})
