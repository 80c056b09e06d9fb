/**
 * What an open connection holds (issue #17: memory per connection): an authenticated connection
 * at rest is state and closures, no fiber. A waiting fiber per socket (and one per inbox) cost
 * about 20 KiB of heap each connection; counted here through a supervisor tracking the server's
 * fibers, which does not depend on timing or on the garbage collector.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Layer, Supervisor } from "effect"
import { TestDb } from "../../support/database.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { provisionUser } from "../../support/users.ts"
import { connectAs } from "../../support/ws.ts"

const CONNECTIONS = 20

const fibers = Effect.runSync(Supervisor.track)

layer(
  testServer({ db: TestDb(), config: { WS_MAX_CONNECTIONS_PER_USER: String(CONNECTIONS) } }).pipe(
    Layer.provide(Supervisor.addSupervisor(fibers))
  ),
  { timeout: 60_000 }
)("realtime: what a connection holds", (it) => {
  it.scoped("an authenticated connection at rest holds no fiber; frames are still answered in order", () =>
    Effect.gen(function* () {
      const url = yield* baseUrl
      const user = yield* provisionUser(url, "resting")
      const live = Effect.map(fibers.value, (running) => running.length)
      const before = yield* live
      const sockets = yield* Effect.forEach(Array.from({ length: CONNECTIONS }), () => connectAs(url, user.token))
      // Each connection handled frames (auth, pings) and is at rest again.
      for (const socket of sockets) {
        for (const t of [1, 2, 3]) yield* socket.send({ type: "ping", t })
        for (const t of [1, 2, 3]) expect(yield* socket.next()).toEqual({ type: "pong", t })
      }
      const held = (yield* live) - before
      // Before: two waiting fibers per connection (its frame loop and the socket's own).
      expect(held).toBeLessThan(CONNECTIONS)
    })
  )
})
