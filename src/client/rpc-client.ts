/**
 * The typed RPC client of `WingmateRpcs`, for the app and tests: no server code, only the
 * contracts of src/domain and `@effect/rpc` / `@effect/platform`.
 *
 *   const program = Effect.gen(function* () {
 *     const rpc = yield* WingmateRpcClient
 *     const me = yield* rpc.users.me()
 *     yield* rpc.openers.generate({ profile: { name: "Sam" }, count: 2 }).pipe(Stream.runForEach(Console.log))
 *   })
 *   program.pipe(Effect.provide(WingmateRpcClient.http({ baseUrl, token })))
 *
 * The token goes with every call (a message header), so a long-lived WebSocket keeps working
 * when the app refreshes its short-lived Clerk token: pass an Effect that returns the current one.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Socket from "@effect/platform/Socket"
import { RpcClient, RpcMiddleware, RpcSerialization } from "@effect/rpc"
import { Context, Effect, Layer } from "effect"
import { RPC_PROTOCOL_HEADER, RPC_PROTOCOL_VERSION, RPC_SUBPROTOCOL } from "../domain/protocol.ts"
import { RpcAuthentication, RpcTokenAuthentication, WingmateRpcs } from "../domain/rpc.ts"

export interface WingmateRpcClientOptions {
  /** Where the api is, e.g. `http://localhost:3000` (`/rpc` is appended). */
  readonly baseUrl: string
  /** The session token sent with each call (asked for per call when an Effect); none: calls are refused. */
  readonly token?: string | Effect.Effect<string> | undefined
}

export interface WingmateRpcWebSocketOptions extends WingmateRpcClientOptions {
  /** Opens the socket; default: the global `WebSocket` (browsers, React Native, Node 22). */
  readonly webSocket?: Context.Tag.Service<typeof Socket.WebSocketConstructor> | undefined
}

const rpcUrl = (baseUrl: string) => `${baseUrl.replace(/\/+$/, "")}/rpc`

/** Sets `authorization` on each request message; the server reads it like an HTTP header. */
const withToken =
  (token: WingmateRpcClientOptions["token"]) =>
  <R extends { readonly headers: Headers.Headers }>({ request }: { readonly request: R }) =>
    token === undefined
      ? Effect.succeed(request)
      : Effect.map(typeof token === "string" ? Effect.succeed(token) : token, (value) => ({
          ...request,
          headers: Headers.set(request.headers, "authorization", `Bearer ${value}`)
        }))

/** Both middlewares of the contract carry the token (`users.eraseMe` runs behind the second). */
const authentication = (token: WingmateRpcClientOptions["token"]) =>
  Layer.merge(
    RpcMiddleware.layerClient(RpcAuthentication, withToken(token)),
    RpcMiddleware.layerClient(RpcTokenAuthentication, withToken(token))
  )

/** `POST /rpc`, NDJSON; an answer that is not 2xx (e.g. a 413 envelope) fails the call. */
const httpProtocol = (baseUrl: string) =>
  Layer.effect(
    RpcClient.Protocol,
    Effect.flatMap(HttpClient.HttpClient, (client) =>
      RpcClient.makeProtocolHttp(
        client.pipe(
          HttpClient.mapRequest(HttpClientRequest.prependUrl(rpcUrl(baseUrl))),
          HttpClient.mapRequest(HttpClientRequest.setHeader(RPC_PROTOCOL_HEADER, RPC_PROTOCOL_VERSION)),
          HttpClient.filterStatusOk
        )
      )
    )
  ).pipe(Layer.provide(RpcSerialization.layerNdjson), Layer.provide(FetchHttpClient.layer))

/** `GET /rpc` upgraded to a WebSocket (subprotocol `wingmate.rpc.v1`), JSON messages; many calls share the socket. */
const webSocketProtocol = (options: WingmateRpcWebSocketOptions) =>
  RpcClient.layerProtocolSocket().pipe(
    Layer.provide(
      Layer.scoped(
        Socket.Socket,
        Socket.makeWebSocket(rpcUrl(options.baseUrl).replace(/^http/, "ws"), { protocols: RPC_SUBPROTOCOL })
      )
    ),
    Layer.provide(
      options.webSocket === undefined
        ? Socket.layerWebSocketConstructorGlobal
        : Layer.succeed(Socket.WebSocketConstructor, options.webSocket)
    ),
    Layer.provide(RpcSerialization.layerJson)
  )

const makeClient = RpcClient.make(WingmateRpcs)

export type WingmateRpcClientService = Effect.Effect.Success<typeof makeClient>

export class WingmateRpcClient extends Context.Tag("WingmateRpcClient")<WingmateRpcClient, WingmateRpcClientService>() {
  /** Each call is one HTTP request whose responses stream back as NDJSON. */
  static http(options: WingmateRpcClientOptions): Layer.Layer<WingmateRpcClient> {
    return Layer.scoped(WingmateRpcClient, makeClient).pipe(
      Layer.provide(httpProtocol(options.baseUrl)),
      Layer.provide(authentication(options.token))
    )
  }

  /** One WebSocket for every call (closed with the layer's scope). */
  static webSocket(options: WingmateRpcWebSocketOptions): Layer.Layer<WingmateRpcClient> {
    return Layer.scoped(WingmateRpcClient, makeClient).pipe(
      Layer.provide(webSocketProtocol(options)),
      Layer.provide(authentication(options.token))
    )
  }
}
