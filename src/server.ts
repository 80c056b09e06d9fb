/**
 * The api process: every route on one HTTP server (HttpApi, its OpenAPI document and docs, the
 * WebSocket gateway at /ws; RPC joins here) and the plumbing around them, on the infrastructure
 * (infrastructure.ts). The worker's composition is worker.ts: neither process loads the other's
 * modules (the api reads no screenshot, the worker serves no route; issue #17).
 */
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import { Layer } from "effect"
import { TokenVerifier } from "./core/auth/token-verifier.ts"
import { Tombstones } from "./core/erasure.ts"
import { JsonBodiesLive } from "./core/http/json-bodies.ts"
import { RpcProtocolVersion, rpcRoutes, RpcServerFailuresLive } from "./core/http/rpc.ts"
import { DocsRoutes } from "./core/http/docs.ts"
import { HttpPlumbing, RouteMetrics } from "./core/http/middleware.ts"
import { RouteIdempotency } from "./core/http/idempotency.ts"
import { RouteRateLimits } from "./core/http/rate-limit.ts"
import { IdempotencyErasureLive, IdempotencyStore } from "./core/idempotency.ts"
import { NodeServerLive } from "./core/http/server.ts"
import { LocalStorageRoutes } from "./core/storage/local-routes.ts"
import { WingmateApi } from "./domain/api.ts"
import { onInfrastructure } from "./infrastructure.ts"
import { WingmateRpcs } from "./domain/rpc.ts"
import { HealthHttpLive } from "./modules/health/health.http.ts"
import { MetricsLive } from "./modules/operations/metrics.ts"
import { OperationsHttpLive } from "./modules/operations/metrics.http.ts"
import { QueuesDashboardRoutes } from "./modules/operations/queues-dashboard.ts"
import { UploadsHttpLive } from "./modules/uploads/uploads.http.ts"
import { UploadsRpcLive } from "./modules/uploads/uploads.rpc.ts"
import { UploadsErasureLive, UploadsService, UploadsSweeperLive } from "./modules/uploads/uploads.service.ts"
import {
  AuthenticationLive,
  RateLimitsErasureLive,
  RpcAuthenticationLive,
  RpcTokenAuthenticationLive,
  TokenAuthenticationLive
} from "./modules/users/authentication.ts"
import { UsersHttpLive } from "./modules/users/users.http.ts"
import { AccountRpcLive, UsersRpcLive } from "./modules/users/users.rpc.ts"
import { UsersService } from "./modules/users/users.service.ts"
import { UsersRepo } from "./modules/users/users.repo.ts"
import { MatchesHttpLive } from "./modules/matches/matches.http.ts"
import { MatchesRpcLive } from "./modules/matches/matches.rpc.ts"
import { MatchesService } from "./modules/matches/matches.service.ts"
import { OpenersHttpLive } from "./modules/openers/openers.http.ts"
import { OpenersRpcLive } from "./modules/openers/openers.rpc.ts"
import { OpenersService } from "./modules/openers/openers.service.ts"
import { SessionsHttpLive } from "./modules/sessions/sessions.http.ts"
import { SessionsRpcLive } from "./modules/sessions/sessions.rpc.ts"
import { SessionsErasureLive, SessionsService } from "./modules/sessions/sessions.service.ts"
import { RealtimeGatewayLive } from "./modules/realtime/realtime.gateway.ts"
import { ClerkWebhooks } from "./modules/webhooks/clerk-webhooks.service.ts"
import { WebhookDeliveries, WebhookDeliveriesPrunerLive } from "./modules/webhooks/webhook-deliveries.ts"
import { WebhooksHttpLive } from "./modules/webhooks/webhooks.http.ts"

/**
 * The feature services behind the handlers (one instance each, shared by middleware and handlers),
 * with their erasure steps and background fibers.
 */
const Modules = Layer.mergeAll(
  AuthenticationLive,
  TokenAuthenticationLive,
  ClerkWebhooks.Default,
  WebhookDeliveriesPrunerLive.pipe(Layer.provide(WebhookDeliveries.Default)),
  UploadsErasureLive,
  UploadsSweeperLive,
  SessionsErasureLive,
  RateLimitsErasureLive
).pipe(
  Layer.provideMerge(SessionsService.Default),
  Layer.provideMerge(OpenersService.Default),
  Layer.provideMerge(MatchesService.Default),
  Layer.provideMerge(Layer.mergeAll(UsersService.Default, UploadsService.Default, UsersRepo.Default))
)

const ApiHandlers = Layer.mergeAll(
  HealthHttpLive,
  OperationsHttpLive.pipe(Layer.provide(MetricsLive("api"))),
  UsersHttpLive,
  WebhooksHttpLive,
  UploadsHttpLive,
  MatchesHttpLive,
  OpenersHttpLive,
  SessionsHttpLive
).pipe(Layer.provide(Modules))

/** The RPC procedures (`WingmateRpcs`) and their authentication, on the same services. */
const RpcHandlers = Layer.mergeAll(
  UsersRpcLive,
  AccountRpcLive,
  MatchesRpcLive,
  UploadsRpcLive,
  OpenersRpcLive,
  SessionsRpcLive,
  RpcAuthenticationLive,
  RpcTokenAuthenticationLive,
  RpcServerFailuresLive
).pipe(Layer.provide(Modules))

export const HttpRoutes = Layer.mergeAll(
  HttpLayerRouter.addHttpApi(WingmateApi, { openapiPath: "/openapi.json" }).pipe(
    Layer.provide(ApiHandlers),
    Layer.provide(Modules),
    Layer.provide(JsonBodiesLive),
    Layer.provide(RouteRateLimits),
    Layer.provide(RouteIdempotency.pipe(Layer.provide(IdempotencyStore.layer))),
    Layer.provide(RouteMetrics)
  ),
  IdempotencyErasureLive.pipe(Layer.provide(IdempotencyStore.layer)),
  DocsRoutes.pipe(Layer.provide(RouteRateLimits), Layer.provide(RouteMetrics)),
  rpcRoutes(WingmateRpcs, "/rpc").pipe(
    Layer.provide(RpcHandlers),
    Layer.provide(RpcProtocolVersion),
    Layer.provide(RouteRateLimits),
    Layer.provide(RouteMetrics)
  ),
  LocalStorageRoutes.pipe(Layer.provide(Tombstones.Default), Layer.provide(RouteMetrics)),
  QueuesDashboardRoutes,
  HttpPlumbing,
  RealtimeGatewayLive.pipe(Layer.provide(Modules))
)

/** Serves routes on the Node server; the server stays in the output so tests can read its address. */
export const serveRoutes = <E, R>(routes: Layer.Layer<never, E, R>) =>
  HttpLayerRouter.serve(routes, { disableLogger: true }).pipe(Layer.provideMerge(NodeServerLive))

/** The whole api process, given only its configuration. */
export const ApiServer = serveRoutes(HttpRoutes).pipe(Layer.provide(TokenVerifier.layer), onInfrastructure("api"))
