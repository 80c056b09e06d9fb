/**
 * The worker's liveness probe: it serves no HTTP otherwise, and a container platform (Docker's
 * HEALTHCHECK, a Kubernetes httpGet probe) needs something to ask. `GET /health/live` on
 * `WORKER_HEALTH_PORT` answers as the api's does; it says the process's event loop turns, not
 * that Redis or the database answer (a blip there must not restart every worker).
 * `GET /metrics` there answers the worker's metrics (Prometheus text) under the api's admin rule
 * (src/core/http/admin.ts: ADMIN_TOKEN as a bearer; open in development, 404 in production without it).
 * Off (no port opened) unless WORKER_HEALTH_PORT is set: several workers may share a host.
 */
import { Effect, Layer, Runtime } from "effect"
import { createServer, type IncomingMessage, type Server } from "node:http"
import { AppConfig } from "../../core/config.ts"
import { ADMIN_CHALLENGE, adminDecision } from "../../core/http/admin.ts"
import { Metrics, PROMETHEUS_CONTENT_TYPE } from "../../core/metrics.ts"

interface Answer {
  readonly status: number
  readonly text: string
  readonly headers: Record<string, string>
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}): Answer => ({
  status,
  text: JSON.stringify(body),
  headers: { "content-type": "application/json", ...headers }
})

const notFound = json(404, {
  success: false,
  error: { code: "ROUTE_NOT_FOUND", message: "Only GET /health/live and GET /metrics here" }
})

const route = (request: IncomingMessage) =>
  Effect.gen(function* () {
    const path = (request.url ?? "").split("?")[0]
    if (request.method === "GET" && path === "/health/live") {
      return json(200, { success: true, data: { status: "ok", uptimeSeconds: Math.round(process.uptime()) } })
    }
    if (request.method !== "GET" || path !== "/metrics") return notFound
    const decision = adminDecision(yield* AppConfig, request.headers.authorization)
    if (decision === "off") return notFound
    if (decision === "unauthorized") {
      return json(
        401,
        { success: false, error: { code: "UNAUTHORIZED", message: "The admin token is required" } },
        { "www-authenticate": ADMIN_CHALLENGE }
      )
    }
    const text = yield* Effect.flatMap(Metrics, (metrics) => metrics.scrape)
    return { status: 200, text, headers: { "content-type": PROMETHEUS_CONTENT_TYPE } } satisfies Answer
  })

const listen = (port: number, host: string, runtime: Runtime.Runtime<AppConfig | Metrics>) =>
  Effect.async<Server, Error>((resume) => {
    const server = createServer((request, response) => {
      Runtime.runPromise(runtime, route(request)).then(
        ({ status, text, headers }) =>
          response.writeHead(status, { ...headers, "cache-control": "no-store" }).end(text),
        () =>
          response.writeHead(500, { "content-type": "application/json" }).end(
            JSON.stringify({
              success: false,
              error: { code: "INTERNAL_ERROR", message: "An unexpected error occurred" }
            })
          )
      )
    })
    server.once("error", (error) => resume(Effect.fail(error)))
    server.listen(port, host, () => resume(Effect.succeed(server)))
  })

export const WorkerLivenessLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const config = yield* AppConfig
    if (config.workerHealthPort === 0) return
    const runtime = yield* Effect.runtime<AppConfig | Metrics>()
    yield* Effect.acquireRelease(listen(config.workerHealthPort, config.host, runtime).pipe(Effect.orDie), (server) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
    )
    yield* Effect.logInfo(`Worker liveness on :${config.workerHealthPort}/health/live (and /metrics)`)
  })
)
