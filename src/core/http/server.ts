/**
 * The Node HTTP server on PORT, with a bounded graceful shutdown: on SIGTERM/SIGINT it stops
 * accepting, lets in-flight requests finish for up to SHUTDOWN_TIMEOUT_MS, then cuts the rest.
 */
import { HttpServer } from "@effect/platform"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Effect, Layer } from "effect"
import { createServer } from "node:http"
import { AppConfig } from "../config.ts"

export const NodeServerLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    Layer.merge(
      Layer.scoped(
        HttpServer.HttpServer,
        Effect.gen(function* () {
          const server = createServer()
          const httpServer = yield* NodeHttpServer.make(() => server, { port: config.port, host: config.host })
          // Runs before the server's own release (`server.close()`, which waits for open requests).
          yield* Effect.addFinalizer(() =>
            Effect.gen(function* () {
              yield* Effect.logInfo(
                `Shutting down: finishing in-flight requests (at most ${config.shutdownTimeoutMs} ms)`
              )
              server.closeIdleConnections()
              setTimeout(() => server.closeAllConnections(), config.shutdownTimeoutMs).unref()
            })
          )
          return httpServer
        })
      ),
      NodeHttpServer.layerContext
    )
  )
)
