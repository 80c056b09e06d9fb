/**
 * WebSocket message budgets through the real gateway: a flooding client spends its connection's
 * budget, not its address's, so other people behind the same address still authenticate and talk.
 */
import { expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { TestDb } from "../../support/database.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { connect, connectAs, ofType } from "../../support/ws.ts"

const server = testServer({
  db: TestDb(),
  config: {
    RATE_LIMIT_ENABLED: "true",
    RATE_LIMIT_WS_MESSAGE_CONNECTION: "20/60s",
    RATE_LIMIT_WS_MESSAGE_USER: "100000/60s",
    RATE_LIMIT_WS_MESSAGE_IP: "30/60s",
    RATE_LIMIT_WS_CONNECT_IP: "100000/60s",
    RATE_LIMIT_WS_CONNECT_USER: "100000/60s",
    RATE_LIMIT_REST_IP: "100000/60s",
    RATE_LIMIT_REST_USER: "100000/60s"
  }
})

layer(server, { timeout: 60_000 })("realtime gateway: message budgets", (it) => {
  it.scoped("one client's flood does not refuse another user's auth and pings from the same address", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice, bob } = yield* twoUsers(url)
      const flooder = yield* connectAs(url, alice.token)
      // As fast as it can, twice the address's budget (under the 64 frames in flight that would end it).
      for (let i = 0; i < 60; i++) yield* flooder.send({ type: "ping", t: i })
      // Its own connection's budget refuses it; before, the address's did, after spending all of it.
      expect(yield* flooder.next(ofType("error"))).toMatchObject({ code: "RATE_LIMITED" })
      expect(flooder.frames.filter(ofType("pong"))).toHaveLength(19) // its auth frame took the 20th

      const neighbour = yield* connect(url)
      yield* neighbour.send({ type: "auth", token: bob.token })
      expect(yield* neighbour.next()).toMatchObject({ type: "auth.ok" })
      for (const t of [1, 2, 3]) {
        yield* neighbour.send({ type: "ping", t })
        expect(yield* neighbour.next()).toEqual({ type: "pong", t })
      }
    })
  )

  it.scoped("frames before auth count against their connection only; the connection's budget holds", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const { alice } = yield* twoUsers(url)
      const anonymous = yield* connect(url)
      for (let i = 0; i < 25; i++) yield* anonymous.send({ type: "ping", t: i })
      expect(yield* anonymous.next(ofType("error"))).toMatchObject({ code: "RATE_LIMITED" })
      expect(anonymous.frames.filter(ofType("pong"))).toHaveLength(20)
      // A new connection from the same address has its own budget.
      const fresh = yield* connectAs(url, alice.token)
      yield* fresh.send({ type: "ping", t: "fresh" })
      expect(yield* fresh.next()).toEqual({ type: "pong", t: "fresh" })
    })
  )
})
