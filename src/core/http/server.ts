/**
 * The Node HTTP server on PORT, with a bounded graceful shutdown: on SIGTERM/SIGINT it stops
 * accepting, lets in-flight requests finish for up to SHUTDOWN_TIMEOUT_MS, then cuts the rest.
 */
import { HttpServer } from "@effect/platform"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Effect, Layer } from "effect"
import { IncomingMessage, Server } from "node:http"
import { Duplex } from "node:stream"
import { AppConfig } from "../config.ts"
import { Upgrades } from "./upgrades.ts"

/** A Node server that gives upgrades on a registered path to their own handler (see `Upgrades`). */
class RoutingServer extends Server {
  readonly upgrades: Upgrades

  constructor(upgrades: Upgrades) {
    super()
    this.upgrades = upgrades
  }

  override emit(event: string, ...args: Array<unknown>): boolean {
    if (event === "upgrade") {
      const [request, socket, head] = args
      if (request instanceof IncomingMessage && socket instanceof Duplex && Buffer.isBuffer(head)) {
        const handler = this.upgrades.find(request.url)
        if (handler !== undefined) {
          handler(request, socket, head)
          return true
        }
      }
    }
    return super.emit(event, ...args)
  }
}

export const NodeServerLive = Layer.unwrapEffect(
  Effect.map(Effect.all([AppConfig, Upgrades]), ([config, upgrades]) =>
    Layer.merge(
      Layer.scoped(
        HttpServer.HttpServer,
        Effect.gen(function* () {
          const server = new RoutingServer(upgrades)
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
).pipe(Layer.provide(Upgrades.Default))
