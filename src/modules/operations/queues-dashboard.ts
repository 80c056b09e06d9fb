/**
 * The BullMQ dashboard (@bull-board, its Express adapter) at `/admin/queues`: the page, its
 * assets and its JSON API under that prefix. An Effect route guards it with the admin rule
 * (src/core/http/admin.ts: a browser logs in with HTTP Basic, ADMIN_TOKEN as the password) and
 * then hands the Node request and response to Express, which answers them itself.
 *
 * Read-only: jobs are looked at, not retried, promoted or removed there (a session's row and its
 * job change together through the API, never one without the other). Without Redis (the embedded
 * `npm run dev`) there is no BullMQ queue: the dashboard shows none. Not loaded when off.
 */
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import type { Queue } from "bullmq"
import { Effect, Layer, Option } from "effect"
import type { IncomingMessage, ServerResponse } from "node:http"
import { AppConfig } from "../../core/config.ts"
import { ADMIN_CHALLENGE, adminDecision } from "../../core/http/admin.ts"
import { errorResponse } from "../../core/http/middleware.ts"
import { SessionJobs } from "../sessions/sessions.jobs.ts"

export const DASHBOARD_PATH = "/admin/queues"

/**
 * The page's scripts and styles come from its own static folder; it sets inline styles, and
 * links fonts from Google, which are refused (the system's fonts are used): nothing leaves for a
 * third party from an operator's browser.
 */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'"
].join("; ")

/** What the global middleware would set, set here: Express writes the answer itself. */
const DASHBOARD_HEADERS: Record<string, string> = {
  "content-security-policy": DASHBOARD_CSP,
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store"
}

type NodeHandler = (request: IncomingMessage, response: ServerResponse, next: (error?: unknown) => void) => void

const loadDashboard = (queues: ReadonlyArray<Queue>) =>
  Effect.promise(async () => {
    const [{ createBullBoard }, { BullMQAdapter }, { ExpressAdapter }, { default: express }] = await Promise.all([
      import("@bull-board/api"),
      import("@bull-board/api/bullMQAdapter"),
      import("@bull-board/express"),
      import("express")
    ])
    const serverAdapter = new ExpressAdapter()
    serverAdapter.setBasePath(DASHBOARD_PATH)
    createBullBoard({
      queues: queues.map((queue) => new BullMQAdapter(queue, { readOnlyMode: true, allowRetries: false })),
      serverAdapter,
      options: { uiConfig: { boardTitle: "Wingmate queues" } }
    })
    const app = express()
    app.disable("x-powered-by")
    app.use(DASHBOARD_PATH, serverAdapter.getRouter() as NodeHandler)
    const handler: NodeHandler = app
    return handler
  })

/** Runs the Express app on the raw request; done when the answer is written or the client left. */
const serveWith = (handler: NodeHandler, request: HttpServerRequest.HttpServerRequest) =>
  Effect.async<number>((resume) => {
    const nodeRequest = NodeHttpServerRequest.toIncomingMessage(request)
    const nodeResponse = NodeHttpServerRequest.toServerResponse(request)
    for (const [name, value] of Object.entries(DASHBOARD_HEADERS)) nodeResponse.setHeader(name, value)
    nodeResponse.once("close", () => resume(Effect.succeed(nodeResponse.statusCode)))
    handler(nodeRequest, nodeResponse, () => {
      // Nothing under the prefix matched: the envelope, as for any unknown route.
      if (!nodeResponse.headersSent) {
        const body = JSON.stringify({
          success: false,
          error: { code: "ROUTE_NOT_FOUND", message: "No such page of the queue dashboard" }
        })
        nodeResponse.writeHead(404, { "content-type": "application/json" }).end(body)
      }
    })
  })

export const QueuesDashboardRoutes = Layer.unwrapEffect(
  Effect.gen(function* () {
    const config = yield* AppConfig
    if (adminDecision(config, undefined) === "off") return Layer.empty
    const jobs = yield* SessionJobs
    const handler = yield* loadDashboard(Option.toArray(jobs.bullmq))
    const serve = Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const decision = adminDecision(config, request.headers["authorization"])
      if (decision === "unauthorized") {
        return HttpServerResponse.setHeader(
          errorResponse("UNAUTHORIZED", "The admin token is required (HTTP Basic password or Bearer token)"),
          "www-authenticate",
          ADMIN_CHALLENGE
        )
      }
      const status = yield* serveWith(handler, request)
      // Already written by Express: the server leaves it as is; the status is for the log line and metrics.
      return HttpServerResponse.empty({ status })
    })
    return HttpLayerRouter.addAll([
      HttpLayerRouter.route("*", DASHBOARD_PATH, serve),
      HttpLayerRouter.route("*", `${DASHBOARD_PATH}/*`, serve)
    ])
  })
)
