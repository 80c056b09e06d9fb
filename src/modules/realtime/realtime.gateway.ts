/**
 * The WebSocket gateway at `/ws` on the api's port: one `ws` server (no compression, frames
 * capped), a per-address connection limit checked before the handshake, then each socket served
 * by `RealtimeConnections` until it closes. Sessions' progress reaches it through the progress
 * bus (Redis pub/sub), so a client on any api instance follows a job run by any worker.
 */
import { Effect, Either, FiberSet, Layer } from "effect"
import type { IncomingMessage } from "node:http"
import type { Duplex } from "node:stream"
import { type WebSocket, WebSocketServer } from "ws"
import { AppConfig } from "../../core/config.ts"
import { clientAddress } from "../../core/http/client-address.ts"
import { Upgrades } from "../../core/http/upgrades.ts"
import { checkHandshake } from "../../core/http/websocket-handshake.ts"
import { RateLimiter } from "../../core/rate-limit/rate-limiter.ts"
import { REALTIME_SUBPROTOCOL, REALTIME_SUBPROTOCOLS } from "../../domain/protocol.ts"
import { CloseCode } from "../../domain/realtime.ts"
import { RealtimeConnections } from "./realtime.connection.ts"

export const WEBSOCKET_PATH = "/ws"

/** Refuses an upgrade with an HTTP answer in the API's envelope (the socket is still plain HTTP). */
const refuse = (
  socket: Duplex,
  status: string,
  code: string,
  message: string,
  retryAfterSeconds?: number,
  details?: unknown
) => {
  const body = JSON.stringify({
    success: false,
    error: details === undefined ? { code, message } : { code, message, details }
  })
  socket.end(
    `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      (retryAfterSeconds === undefined ? "" : `retry-after: ${retryAfterSeconds}\r\n`) +
      `connection: close\r\n\r\n${body}`
  )
}

export const RealtimeGatewayLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const appConfig = yield* AppConfig
    const config = appConfig.realtime
    const limits = appConfig.rateLimits
    const limiter = yield* RateLimiter
    const upgrades = yield* Upgrades
    const connections = yield* RealtimeConnections
    const runFork = yield* FiberSet.makeRuntime<never>()
    const wss = yield* Effect.acquireRelease(
      Effect.sync(
        () =>
          new WebSocketServer({
            noServer: true,
            // Above the soft limit a frame gets an error frame; far above it, `ws` drops the connection (1009).
            maxPayload: config.maxFrameBytes * 4,
            perMessageDeflate: false,
            // `wingmate.v1` when offered; no offer: no subprotocol (v1). Unknown offers were refused in `accept`.
            handleProtocols: (protocols) => (protocols.has(REALTIME_SUBPROTOCOL) ? REALTIME_SUBPROTOCOL : false)
          })
      ),
      (wss) =>
        Effect.async<void>((resume) => {
          for (const client of wss.clients) client.close(CloseCode.GoingAway, "Server shutting down")
          wss.close(() => resume(Effect.void))
        })
    )

    const accept = (request: IncomingMessage, socket: Duplex, head: Buffer) =>
      Effect.gen(function* () {
        const handshake = checkHandshake(request.method, request.headers, REALTIME_SUBPROTOCOLS)
        if (Either.isLeft(handshake)) {
          // `ws` would answer it with an HTML 400 of its own and never call back (websocket-handshake.ts).
          const { message, details } = handshake.left
          return refuse(socket, "400 Bad Request", "BAD_REQUEST", message, undefined, details)
        }
        const offered = handshake.right
        if (offered.length > 0 && !offered.some((protocol) => REALTIME_SUBPROTOCOLS.includes(protocol))) {
          return refuse(
            socket,
            "400 Bad Request",
            "BAD_REQUEST",
            `No offered WebSocket subprotocol is supported: offer ${REALTIME_SUBPROTOCOL} (or none, for version 1)`,
            undefined,
            { reason: "unsupported-protocol", supported: REALTIME_SUBPROTOCOLS }
          )
        }
        const ip = clientAddress(request, appConfig.trustProxy)
        if (limits.enabled) {
          const decision = yield* limiter.consume(limits.wsConnectIp, `ip:${ip}`)
          if (!decision.allowed) {
            return refuse(
              socket,
              "429 Too Many Requests",
              "RATE_LIMITED",
              "Too many connections from this address",
              Math.max(1, Math.ceil(decision.retryAfterMs / 1000))
            )
          }
        }
        const ws = yield* Effect.async<WebSocket>((resume) =>
          wss.handleUpgrade(request, socket, head, (ws) => resume(Effect.succeed(ws)))
        )
        yield* connections.serve(ws, ip)
      })

    yield* upgrades.route(WEBSOCKET_PATH, (request, socket, head) => {
      runFork(accept(request, socket, head))
    })
  })
).pipe(Layer.provide(RealtimeConnections.Default), Layer.provide(Upgrades.Default))
