/**
 * An RPC group served on the HttpLayerRouter at one path: `POST` with NDJSON (one request per
 * line in, responses streamed back line by line), and `GET` upgraded to a WebSocket (JSON
 * messages, many calls over one socket). Two servers of the same group, sharing its handlers.
 */
import { HttpLayerRouter, HttpServerRequest } from "@effect/platform"
import { type Rpc, type RpcGroup, RpcSerialization, RpcServer } from "@effect/rpc"
import { Effect, Layer } from "effect"
import { boundedReport, conciseReport } from "../../domain/errors.ts"
import { jsonLimitExceeded } from "./json-limits.ts"
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

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

/**
 * A defect as sent: a string (a payload's decode failure, said as REST says it: `path: message`
 * per field) or `{ name, message }`.
 */
const boundedDefect = (defect: unknown): unknown =>
  typeof defect === "string"
    ? conciseReport(defect)
    : isRecord(defect) && typeof defect["message"] === "string"
      ? { ...defect, message: boundedReport(defect["message"]) }
      : defect

const boundedCause = (cause: unknown): unknown => {
  if (!isRecord(cause)) return cause
  if (cause["_tag"] === "Die") return { ...cause, defect: boundedDefect(cause["defect"]) }
  if (cause["_tag"] === "Sequential" || cause["_tag"] === "Parallel") {
    return { ...cause, left: boundedCause(cause["left"]), right: boundedCause(cause["right"]) }
  }
  return cause
}

/** What the server sends (one message, or a batch of them): defects never echo a large value. */
const boundedResponse = (response: unknown): unknown => {
  if (Array.isArray(response)) return response.map(boundedResponse)
  if (!isRecord(response)) return response
  if (response["_tag"] === "Defect") return { ...response, defect: boundedDefect(response["defect"]) }
  const exit = response["exit"]
  if (response["_tag"] === "Exit" && isRecord(exit) && exit["_tag"] === "Failure") {
    return { ...response, exit: { ...exit, cause: boundedCause(exit["cause"]) } }
  }
  return response
}

/**
 * The RPC servers' serialization, for both transports: input beyond the JSON limits (json-limits.ts) is
 * refused before it is parsed (the server answers a parser's failure as a `Defect` message, as for
 * malformed JSON), and decode failures sent back are bounded (the formatted report quotes the value).
 */
const guarded = (serialization: RpcSerialization.RpcSerialization["Type"]) =>
  RpcSerialization.RpcSerialization.of({
    contentType: serialization.contentType,
    includesFraming: serialization.includesFraming,
    unsafeMake: () => {
      const parser = serialization.unsafeMake()
      const decoder = new TextDecoder()
      return {
        decode: (data) => {
          // A parser reports bad input by throwing (as JSON.parse does); the server catches it.
          const exceeded = jsonLimitExceeded(typeof data === "string" ? data : decoder.decode(data))
          if (exceeded !== undefined) throw new Error(exceeded)
          return parser.decode(data)
        },
        encode: (response) => parser.encode(boundedResponse(response))
      }
    }
  })

export const rpcRoutes = <Rpcs extends Rpc.Any>(group: RpcGroup.RpcGroup<Rpcs>, path: HttpLayerRouter.PathInput) =>
  Layer.mergeAll(
    RpcServer.layer(group, options).pipe(
      Layer.provide(RpcServer.layerProtocolHttpRouter({ path })),
      Layer.provide(Layer.succeed(RpcSerialization.RpcSerialization, guarded(RpcSerialization.ndjson)))
    ),
    RpcServer.layer(group, options).pipe(
      Layer.provide(webSocketProtocol(path)),
      Layer.provide(Layer.succeed(RpcSerialization.RpcSerialization, guarded(RpcSerialization.json)))
    )
  )
