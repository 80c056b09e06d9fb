/**
 * An RPC group served on the HttpLayerRouter at one path: `POST` with NDJSON (one request per
 * line in, responses streamed back line by line), and `GET` upgraded to a WebSocket (JSON
 * messages, many calls over one socket). Two servers of the same group, sharing its handlers.
 */
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { type Rpc, type RpcGroup, RpcMessage, RpcSerialization, RpcServer } from "@effect/rpc"
import { Cause, Chunk, Data, Effect, Either, Layer, ParseResult, Predicate, Schema } from "effect"
import { IncomingMessage } from "node:http"
import {
  RPC_PROTOCOL_HEADER,
  RPC_PROTOCOL_VERSION,
  RPC_PROTOCOL_VERSIONS,
  RPC_SUBPROTOCOL,
  RPC_SUBPROTOCOLS
} from "../../domain/protocol.ts"
import type { HttpApiDecodeError } from "@effect/platform/HttpApiError"
import {
  boundedReport,
  conciseReport,
  InternalError,
  issuesByPath,
  ServiceUnavailable,
  ValidationError
} from "../../domain/errors.ts"
import { RpcServerFailures } from "../../domain/rpc.ts"
import { DbError, isConnectionLost } from "../db/db.ts"
import { jsonLimitExceeded } from "./json-limits.ts"
import { errorResponse } from "./middleware.ts"
import { checkHandshake } from "./websocket-handshake.ts"

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

/** A request's id on the wire: a string `BigInt` reads, as @effect/rpc converts it (`RequestId`). */
const WireRequestId = Schema.BigInt.annotations({ message: () => "Expected an integer as a string" })

/**
 * The messages a client sends, as @effect/rpc reads them (`RpcMessage.FromClientEncoded`): the
 * server trusts their shape (a request id goes through `BigInt`, headers are iterated as pairs), and
 * a message of another shape would throw outside its handling of one call, ending every call of
 * the client (the socket closed, the NDJSON batch dropped or a 500).
 */
const ClientMessage = Schema.Union(
  Schema.TaggedStruct("Request", {
    id: WireRequestId,
    tag: Schema.String,
    // Decoded by the procedure's own schema (absent: a procedure without payload).
    payload: Schema.optional(Schema.Unknown),
    // Values never quoted back: they hold the token.
    headers: Schema.Array(Schema.Tuple(Schema.String, Schema.String)).annotations({
      message: () => ({ message: "Expected an array of [name, value] pairs of strings", override: true })
    }),
    traceId: Schema.optional(Schema.String),
    spanId: Schema.optional(Schema.String),
    sampled: Schema.optional(Schema.Boolean)
  }),
  Schema.TaggedStruct("Ack", { requestId: WireRequestId }),
  Schema.TaggedStruct("Interrupt", { requestId: WireRequestId }),
  Schema.TaggedStruct("Ping", {}),
  Schema.TaggedStruct("Eof", {})
).annotations({ message: () => "Expected an object of _tag Request, Ack, Interrupt, Ping or Eof" })
const checkClientMessage = Schema.decodeUnknownEither(ClientMessage, { errors: "all" })

/**
 * A message the serialization could not read (not JSON, or not of a client message's shape), in
 * place of it: `answeringMalformed` answers it with a `Defect` message, and the client's other
 * messages (the other lines of an NDJSON batch, the later messages of a socket) are served.
 */
class MalformedMessage extends Data.TaggedClass("MalformedMessage")<{ readonly defect: unknown }> {}

const malformedReport = (error: ParseResult.ParseError): string => {
  const { issues, omittedIssues } = issuesByPath(ParseResult.ArrayFormatter.formatErrorSync(error))
  const said = issues.map((issue) => (issue.path === "" ? issue.message : `${issue.path}: ${issue.message}`))
  return (
    `Malformed RPC message: ${said.join("; ")}` + (omittedIssues === undefined ? "" : ` (and ${omittedIssues} more)`)
  )
}

/** The message itself when its shape is a client message's (handed on as parsed), else its stand-in. */
const checked = (message: unknown): unknown =>
  Either.match(checkClientMessage(message), {
    onLeft: (error) => new MalformedMessage({ defect: malformedReport(error) }),
    onRight: () => message
  })

/**
 * The RPC servers' serialization, for both transports (JSON, one message per WebSocket frame, and
 * NDJSON): input beyond the JSON limits (json-limits.ts) is refused before it is parsed (the server
 * answers a parser's failure as a `Defect` message), each message is checked for its shape (see
 * `ClientMessage`; a bad one is a `MalformedMessage`), each NDJSON line on its own, so a bad line
 * fails alone; decode failures sent back are bounded (the formatted report quotes the value).
 */
const guarded = (serialization: RpcSerialization.RpcSerialization["Type"]) =>
  RpcSerialization.RpcSerialization.of({
    contentType: serialization.contentType,
    includesFraming: serialization.includesFraming,
    unsafeMake: () => {
      let parser = serialization.unsafeMake()
      const decoder = new TextDecoder()
      /** The input in the pieces the parser gets: each complete NDJSON line, then the rest (buffered by it). */
      const pieces = (text: string): ReadonlyArray<string> => {
        if (!serialization.includesFraming) return [text]
        const end = text.lastIndexOf("\n") + 1
        return [...text.slice(0, end).split(/(?<=\n)/), text.slice(end)].filter((piece) => piece !== "")
      }
      return {
        decode: (data) => {
          const text = typeof data === "string" ? data : decoder.decode(data)
          // A parser reports bad input by throwing (as JSON.parse does); the server catches it.
          const exceeded = jsonLimitExceeded(text)
          if (exceeded !== undefined) throw new Error(exceeded)
          return pieces(text).flatMap((piece) => {
            try {
              return parser.decode(piece).map(checked)
            } catch (cause) {
              // A frame beyond the parser's buffer closes a socket (1009): the library's answer.
              if (Predicate.isTagged(cause, "RpcSerializationError")) throw cause
              // A parser that threw keeps the bad line in its buffer: a new one reads the next lines.
              parser = serialization.unsafeMake()
              return [new MalformedMessage({ defect: cause })]
            }
          })
        },
        encode: (response) => parser.encode(boundedResponse(response))
      }
    }
  })

/**
 * `protocol`, with each `MalformedMessage` answered by a `Defect` message instead of reaching the
 * server (a new layer per protocol: one layer value provided twice would be built once).
 */
const answeringMalformed = <E, R>(protocol: Layer.Layer<RpcServer.Protocol, E, R>) =>
  Layer.effect(
    RpcServer.Protocol,
    Effect.map(RpcServer.Protocol, (served) =>
      RpcServer.Protocol.of({
        ...served,
        run: (f) =>
          served.run((clientId, message) => {
            // Typed as a client message; the serialization put a stand-in where it could not read one.
            const received: unknown = message
            return received instanceof MalformedMessage
              ? served.send(clientId, RpcMessage.ResponseDefectEncoded(received.defect))
              : f(clientId, message)
          })
      })
    )
  ).pipe(Layer.provide(protocol))

export const rpcRoutes = <Rpcs extends Rpc.Any>(group: RpcGroup.RpcGroup<Rpcs>, path: HttpLayerRouter.PathInput) =>
  Layer.mergeAll(
    RpcServer.layer(group, options).pipe(
      Layer.provide(answeringMalformed(RpcServer.layerProtocolHttpRouter({ path }))),
      Layer.provide(Layer.succeed(RpcSerialization.RpcSerialization, guarded(RpcSerialization.ndjson)))
    ),
    RpcServer.layer(group, options).pipe(
      Layer.provide(answeringMalformed(webSocketProtocol(path))),
      Layer.provide(Layer.succeed(RpcSerialization.RpcSerialization, guarded(RpcSerialization.json)))
    )
  )

const UNEXPECTED = "An unexpected error occurred"

/**
 * `RpcServerFailures` (outermost on every procedure): a defect of a handler or of a middleware
 * never reaches the client as it is (a database error's text names tables, constraints, source
 * lines). A lost database connection is `ServiceUnavailable`, as REST answers it 503; any other
 * defect is logged and dies with a generic message, as REST answers it 500 `INTERNAL_ERROR`
 * (middleware.ts). Typed failures and interruptions pass unchanged. A payload that does not
 * decode is answered before any handler runs (its report is for the client).
 */
export const RpcServerFailuresLive = Layer.succeed(
  RpcServerFailures,
  RpcServerFailures.of(({ next, rpc }) =>
    Effect.catchAllCause(next, (cause) => {
      const defects = Chunk.toReadonlyArray(Cause.defects(cause))
      if (defects.length === 0) return Effect.failCause(cause)
      const lost = defects.find((defect) => defect instanceof DbError && isConnectionLost(defect))
      if (lost !== undefined) {
        return Effect.zipRight(
          Effect.logWarning(`Database unavailable while serving ${rpc._tag}`, lost),
          Effect.fail(new ServiceUnavailable({ message: "The database is unavailable; try again shortly" }))
        )
      }
      return Effect.zipRight(
        Effect.logError(`Unhandled failure while serving ${rpc._tag}`, cause),
        Effect.die(new InternalError({ message: UNEXPECTED }))
      )
    })
  )
)

/** A service's request decode failure (a bad `cursor`) as the procedure's `ValidationError`. */
export const decodeErrorToValidation = (error: HttpApiDecodeError) =>
  Effect.fail(
    new ValidationError({
      message: error.message,
      details: { issues: error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message })) }
    })
  )

const unsupportedProtocol = (message: string, supported: ReadonlyArray<string>) =>
  errorResponse("BAD_REQUEST", message, { reason: "unsupported-protocol", supported })

/**
 * The RPC protocol version (src/domain/protocol.ts), a route middleware of `/rpc`: `Wingmate-Protocol`
 * other than 1 is a 400 envelope; on a WebSocket upgrade, a handshake the socket server would refuse
 * (websocket-handshake.ts) or an offer of subprotocols without `wingmate.rpc.v1` too, and one with it is narrowed to it (the socket
 * server selects the first one offered). HTTP answers say `Wingmate-Protocol: 1`.
 */
export const RpcProtocolVersion = HttpLayerRouter.middleware(
  Effect.succeed(<E, R>(route: HttpApp.Default<E, R>) =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const version = request.headers[RPC_PROTOCOL_HEADER]
      if (version !== undefined && !RPC_PROTOCOL_VERSIONS.includes(version.trim())) {
        return Effect.succeed(
          unsupportedProtocol(
            `Unsupported RPC protocol version: send ${RPC_PROTOCOL_HEADER}: ${RPC_PROTOCOL_VERSION} (or none)`,
            RPC_PROTOCOL_VERSIONS
          )
        )
      }
      const handshake = isUpgrade(request)
        ? checkHandshake(request.method, request.headers, RPC_SUBPROTOCOLS)
        : Either.right<ReadonlyArray<string>>([])
      if (Either.isLeft(handshake)) {
        // The socket server would answer it itself and never hand the request back (websocket-handshake.ts).
        return Effect.succeed(errorResponse("BAD_REQUEST", handshake.left.message, handshake.left.details))
      }
      if (handshake.right.length > 0) {
        if (!handshake.right.includes(RPC_SUBPROTOCOL)) {
          return Effect.succeed(
            unsupportedProtocol(
              `No offered WebSocket subprotocol is supported: offer ${RPC_SUBPROTOCOL} (or none, for version 1)`,
              RPC_SUBPROTOCOLS
            )
          )
        }
        if (request.source instanceof IncomingMessage)
          request.source.headers["sec-websocket-protocol"] = RPC_SUBPROTOCOL
      }
      return Effect.zipRight(
        HttpApp.appendPreResponseHandler((_request, response) =>
          Effect.succeed(HttpServerResponse.setHeader(response, RPC_PROTOCOL_HEADER, RPC_PROTOCOL_VERSION))
        ),
        route
      )
    })
  )
).layer
