/**
 * The api process: every route on one HTTP server (HttpApi, its OpenAPI document and docs; RPC
 * and WebSocket join here), the plumbing around them, and the layers they run on.
 */
import { HttpApiScalar, HttpLayerRouter } from "@effect/platform"
import { Layer } from "effect"
import { AppConfig } from "./core/config.ts"
import { Db } from "./core/db/db.ts"
import { HttpPlumbing } from "./core/http/middleware.ts"
import { NodeServerLive } from "./core/http/server.ts"
import { LoggingLive } from "./core/logging.ts"
import { Redis } from "./core/redis.ts"
import { WingmateApi } from "./domain/api.ts"
import { HealthHttpLive } from "./modules/health/health.http.ts"

const ApiHandlers = Layer.mergeAll(HealthHttpLive)

export const HttpRoutes = Layer.mergeAll(
  HttpLayerRouter.addHttpApi(WingmateApi, { openapiPath: "/openapi.json" }).pipe(Layer.provide(ApiHandlers)),
  HttpApiScalar.layerHttpLayerRouter({
    api: WingmateApi,
    path: "/docs",
    scalar: { withDefaultFonts: false }
  }),
  HttpPlumbing
)

/** What every route may use: database, Redis. */
export const Infrastructure = Layer.mergeAll(Db.layer, Redis.layer)

/** Serves routes on the Node server; the server stays in the output so tests can read its address. */
export const serveRoutes = <E, R>(routes: Layer.Layer<never, E, R>) =>
  HttpLayerRouter.serve(routes, { disableLogger: true }).pipe(Layer.provideMerge(NodeServerLive))

/** The whole api process, given only its configuration. */
export const ApiServer = serveRoutes(HttpRoutes).pipe(
  Layer.provide(Infrastructure),
  Layer.provide(LoggingLive),
  Layer.provide(AppConfig.Default)
)
