/**
 * The Node HTTP server on PORT, with a bounded graceful shutdown: on SIGTERM/SIGINT it stops
 * accepting, lets in-flight requests finish for up to SHUTDOWN_TIMEOUT_MS, then cuts the rest.
 * Slow clients are bounded (HTTP_HEADERS_TIMEOUT_MS, HTTP_REQUEST_TIMEOUT_MS,
 * HTTP_KEEP_ALIVE_TIMEOUT_MS) and so are open connections per address (HTTP_MAX_CONNECTIONS_PER_ADDRESS).
 */
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Effect, Layer } from "effect"
import { IncomingMessage, Server, ServerResponse } from "node:http"
import { Socket } from "node:net"
import { Duplex } from "node:stream"
import { ErrorCatalog, type ErrorCode } from "../../domain/errors.ts"
import { AppConfig } from "../config.ts"
import { Upgrades } from "./upgrades.ts"
import { watchUtf8 } from "./utf8-guard.ts"

/** An answer written straight to a socket that HTTP parsing never handed to a route, in the envelope. */
const rawAnswer = (code: ErrorCode, reason: string, message: string, extraHeaders = "") => {
  const body = JSON.stringify({ success: false, error: { code, message } })
  return (
    `HTTP/1.1 ${ErrorCatalog[code].status} ${reason}\r\ncontent-type: application/json\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\n${extraHeaders}connection: close\r\n\r\n${body}`
  )
}

const TOO_MANY_CONNECTIONS = rawAnswer(
  "RATE_LIMITED",
  "Too Many Requests",
  "Too many open connections from this address",
  "retry-after: 1\r\n"
)

/** The envelope written on a request Node hands over but routing must not see. */
const answerAtOnce = (response: ServerResponse, code: ErrorCode, message: string) => {
  const body = JSON.stringify({ success: false, error: { code, message } })
  response.shouldKeepAlive = false
  response.writeHead(ErrorCatalog[code].status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    connection: "close"
  })
  response.end(body)
}

/** What Node's parser and timers refuse (it would answer a bare status line, or nothing). */
const clientErrorAnswer = (error: unknown): string => {
  const code = error instanceof Error && "code" in error ? error.code : undefined
  if (code === "ERR_HTTP_REQUEST_TIMEOUT") {
    return rawAnswer("REQUEST_TIMEOUT", "Request Timeout", "The request did not arrive in time")
  }
  if (code === "HPE_HEADER_OVERFLOW") {
    return rawAnswer("HEADERS_TOO_LARGE", "Request Header Fields Too Large", "The request's headers are too large")
  }
  return rawAnswer("BAD_REQUEST", "Bad Request", "The request is not valid HTTP")
}

interface ServerLimits {
  readonly headersTimeoutMs: number
  readonly requestTimeoutMs: number
  readonly keepAliveTimeoutMs: number
  /** 0: no cap. */
  readonly maxConnectionsPerAddress: number
}

/**
 * A Node server that gives upgrades on a registered path to their own handler (see `Upgrades`),
 * caps open connections per peer address, turns absolute-form request targets into paths, and
 * answers an oversized chunked body with its 413 instead of a reset.
 */
class RoutingServer extends Server {
  readonly upgrades: Upgrades
  readonly maxPerAddress: number
  readonly openByAddress = new Map<string, number>()

  constructor(upgrades: Upgrades, limits: ServerLimits) {
    super({
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Node checks the two timeouts above only this often (30 s by default).
      connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
      // Node's own answer to a missing Host is an empty 400: `emit` answers it with the envelope.
      requireHostHeader: false
    })
    this.upgrades = upgrades
    this.maxPerAddress = limits.maxConnectionsPerAddress
    this.on("clientError", (error, socket) => {
      // As Node does by default: an answer only if nothing was written on this socket yet.
      if (socket instanceof Socket && socket.writable && socket.bytesWritten === 0)
        socket.end(clientErrorAnswer(error), () => socket.destroy())
      else socket.destroy()
    })
    // Without a listener Node writes an empty 417 itself.
    this.on("checkExpectation", (_request: IncomingMessage, response: ServerResponse) =>
      answerAtOnce(response, "EXPECTATION_FAILED", "The only expectation this server meets is 100-continue")
    )
  }

  override emit(event: string, ...args: Array<unknown>): boolean {
    if (event === "connection") {
      const [socket] = args
      if (socket instanceof Socket && !this.admit(socket)) return true
    }
    if (event === "request") {
      const [request, response] = args
      if (request instanceof IncomingMessage && response instanceof ServerResponse) {
        if (request.httpVersion === "1.1" && request.headers.host === undefined) {
          answerAtOnce(response, "BAD_REQUEST", "An HTTP/1.1 request must carry a Host header")
          return true
        }
        request.url = originForm(request.url)
        keepSocketForAnswer(request, response)
        // A body read as JSON (no type, or application/json): its bytes must be UTF-8.
        const contentType = request.headers["content-type"]?.trim() ?? ""
        if (contentType === "" || /^application\/json\s*(;|$)/i.test(contentType)) watchUtf8(request)
      }
    }
    if (event === "upgrade") {
      const [request, socket, head] = args
      if (request instanceof IncomingMessage && socket instanceof Duplex && Buffer.isBuffer(head)) {
        request.url = originForm(request.url)
        const handler = this.upgrades.find(request.url)
        if (handler !== undefined) {
          handler(request, socket, head)
          return true
        }
      }
    }
    return super.emit(event, ...args)
  }

  /** Counts the socket against its address while it is open; refuses it over the cap. */
  private admit(socket: Socket): boolean {
    if (this.maxPerAddress <= 0) return true
    const address = socket.remoteAddress ?? "unknown"
    const open = this.openByAddress.get(address) ?? 0
    if (open >= this.maxPerAddress) {
      // HTTP sockets allow half-open: without reading what the client sends, and a deadline, it would linger.
      socket.resume()
      socket.setTimeout(2_000, () => socket.destroy())
      socket.end(TOO_MANY_CONNECTIONS)
      return false
    }
    this.openByAddress.set(address, open + 1)
    socket.once("close", () => {
      const left = (this.openByAddress.get(address) ?? 1) - 1
      if (left <= 0) this.openByAddress.delete(address)
      else this.openByAddress.set(address, left)
    })
    return true
  }
}

/**
 * `GET http://host/path` (absolute form, which servers must accept) as `/path`: routing, limits
 * and logs then see one spelling. The host is not trusted for anything.
 */
const originForm = (url: string | undefined): string => {
  const target = url ?? "/"
  if (target.startsWith("/") || target === "*") return target
  const match = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*(.*)$/i.exec(target)
  if (match === null) return target
  const rest = match[1] ?? ""
  return rest.startsWith("/") ? rest : `/${rest}`
}

/**
 * The platform reads a body with a byte limit and, past it, destroys the request, which destroys
 * the socket: the client sees a reset instead of the 413 the server then answers. Until the answer
 * is sent, destroying the request only stops reading it (the rest of the body is discarded, and
 * the connection closes after the answer).
 */
const keepSocketForAnswer = (request: IncomingMessage, response: ServerResponse) => {
  const destroy = request.destroy.bind(request)
  request.destroy = (error?: Error) => {
    if (response.writableEnded || request.complete) return destroy(error)
    request.removeAllListeners("data")
    request.resume()
    response.shouldKeepAlive = false
    return request
  }
}

export const NodeServerLive = Layer.unwrapEffect(
  Effect.map(Effect.all([AppConfig, Upgrades]), ([config, upgrades]) =>
    Layer.merge(
      Layer.scoped(
        HttpServer.HttpServer,
        Effect.gen(function* () {
          // Behind trusted proxies every peer is a proxy: capping its connections would cap everyone's.
          const server = new RoutingServer(upgrades, {
            ...config.http,
            maxConnectionsPerAddress: config.trustProxy > 0 ? 0 : config.http.maxConnectionsPerAddress
          })
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
