/**
 * An RPC group served on the HttpLayerRouter at one path: `POST` with NDJSON (one request per
 * line in, responses streamed back line by line), and `GET` upgraded to a WebSocket (JSON
 * messages, many calls over one socket). Two servers of the same group, sharing its handlers.
 */
import { HttpLayerRouter, HttpServerRequest } from "@effect/platform"
import { type Rpc, type RpcGroup, RpcSerialization, RpcServer } from "@effect/rpc"
import { Effect, Layer } from "effect"
import { errorResponse } from "./middleware.ts"

const options = {
  // A failing call answers its own request only (a defect would otherwise end every call of
  // the client: all the calls of a WebSocket).
  disableFatalDefects: true,
  spanPrefix: "rpc"
} as const

const isUpgrade = (request: HttpServerRequest.HttpServerRequest) =>
  (request.headers["upgrade"] ?? "").toLowerCase() === "websocket"

/** The WebSocket protocol; a plain `GET` (no upgrade) answers 400 instead of failing the upgrade. */
const webSocketProtocol = (path: HttpLayerRouter.PathInput) =>
  Layer.effect(
    RpcServer.Protocol,
    Effect.gen(function* () {
      const router = yield* HttpLayerRouter.HttpRouter
      const { httpApp, protocol } = yield* RpcServer.makeProtocolWithHttpAppWebsocket
      yield* router.add(
        "GET",
        path,
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
          isUpgrade(request)
            ? httpApp
            : Effect.succeed(
                errorResponse("BAD_REQUEST", `GET ${path} is a WebSocket endpoint; or POST NDJSON requests to it`)
              )
        )
      )
      return protocol
    })
  )

export const rpcRoutes = <Rpcs extends Rpc.Any>(group: RpcGroup.RpcGroup<Rpcs>, path: HttpLayerRouter.PathInput) =>
  Layer.mergeAll(
    RpcServer.layer(group, options).pipe(
      Layer.provide(RpcServer.layerProtocolHttpRouter({ path })),
      Layer.provide(RpcSerialization.layerNdjson)
    ),
    RpcServer.layer(group, options).pipe(
      Layer.provide(webSocketProtocol(path)),
      Layer.provide(RpcSerialization.layerJson)
    )
  )
