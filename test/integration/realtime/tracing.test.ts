/**
 * WebSocket frames are traced like REST requests: a `ws <type>` span per frame that does work
 * (none for pings), and what the frame starts (an opener generation's AI stream) under it.
 */
import { expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { TestDb } from "../../support/database.ts"
import { baseUrl, testServer } from "../../support/server.ts"
import { recordingTracer } from "../../support/tracing.ts"
import { twoUsers } from "../../support/users.ts"
import { connectAs, ofType } from "../../support/ws.ts"

const { tracer, spans } = recordingTracer()

layer(testServer({ db: TestDb() }).pipe(Layer.provide(Layer.setTracer(tracer))), { timeout: 60_000 })(
  "realtime gateway: tracing",
  (it) => {
    it.scoped("a span per frame that does work, with the generation's AI stream under it; none for pings", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const socket = yield* connectAs(url, alice.token)
        yield* socket.send({ type: "ping" })
        yield* socket.next(ofType("pong"))
        yield* socket.send({ type: "opener.generate", requestId: "t1", profile: { name: "Sam" }, count: 1 })
        yield* socket.next(ofType("opener.done"))

        const names = spans.map((span) => span.name)
        expect(names).toContain("ws auth")
        expect(names).not.toContain("ws ping")
        const generate = spans.find((span) => span.name === "ws opener.generate")
        expect(generate?.attributes.get("ws.request.id")).toBe("t1")
        expect(spans.filter((span) => span.parentName === "ws opener.generate").map((span) => span.name)).toContain(
          "ai.stream"
        )
      })
    )
  }
)
