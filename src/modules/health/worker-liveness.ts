/**
 * The worker's liveness probe: it serves no HTTP otherwise, and a container platform (Docker's
 * HEALTHCHECK, a Kubernetes httpGet probe) needs something to ask. `GET /health/live` on
 * `WORKER_HEALTH_PORT` answers as the api's does; it says the process's event loop turns, not
 * that Redis or the database answer (a blip there must not restart every worker).
 * Off (no port opened) unless WORKER_HEALTH_PORT is set: several workers may share a host.
 */
import { Effect, Layer } from "effect"
import { createServer, type Server } from "node:http"
import { AppConfig } from "../../core/config.ts"

const answer = (status: number, body: unknown) => ({ status, text: JSON.stringify(body) })

const route = (method: string | undefined, url: string | undefined) =>
  method === "GET" && (url ?? "").split("?")[0] === "/health/live"
    ? answer(200, { success: true, data: { status: "ok", uptimeSeconds: Math.round(process.uptime()) } })
    : answer(404, { success: false, error: { code: "ROUTE_NOT_FOUND", message: "Only GET /health/live here" } })

const listen = (port: number, host: string) =>
  Effect.async<Server, Error>((resume) => {
    const server = createServer((request, response) => {
      const { status, text } = route(request.method, request.url)
      response.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" }).end(text)
    })
    server.once("error", (error) => resume(Effect.fail(error)))
    server.listen(port, host, () => resume(Effect.succeed(server)))
  })

export const WorkerLivenessLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const config = yield* AppConfig
    if (config.workerHealthPort === 0) return
    yield* Effect.acquireRelease(listen(config.workerHealthPort, config.host).pipe(Effect.orDie), (server) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
    )
    yield* Effect.logInfo(`Worker liveness on :${config.workerHealthPort}/health/live`)
  })
)
