/**
 * One session end to end with tracing on: the api server with its consumer (BullMQ on the real
 * Redis, so the job really goes through Redis), exporting over OTLP/HTTP to a fake collector in
 * this test. Closing the server flushes the batch exporter; then one trace must hold the request
 * that created the session, the enqueue, the job, each pipeline phase and the provider attempts,
 * linked parent to child, and no span may carry a token, a query value or message text.
 */
import { expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Logger, LogLevel, Schema, Scope } from "effect"
import { randomBytes } from "node:crypto"
import { createServer } from "node:http"
import { gunzipSync } from "node:zlib"
import { beforeAll } from "vitest"
import { AppConfig } from "../../../src/core/config.ts"
import { Redis } from "../../../src/core/redis.ts"
import { TracingLive } from "../../../src/core/tracing.ts"
import { assertFontsRender, chatScreenshotPng } from "../../fixtures/chat-screenshot.ts"
import { TestDb } from "../../support/database.ts"
import { baseUrl, testConfig, testServer } from "../../support/server.ts"
import { twoUsers } from "../../support/users.ts"
import { awaitFinished, createSession, uploadPng, type WireSession } from "../sessions/support.ts"

let screenshot: Buffer

beforeAll(async () => {
  await assertFontsRender()
  screenshot = await chatScreenshotPng()
})

interface Received {
  readonly path: string | undefined
  readonly contentType: string | undefined
  readonly body: string
}

/** A collector that keeps every POST it receives (answered 200 once the body is read). */
const fakeCollector = Effect.acquireRelease(
  Effect.async<{ readonly url: string; readonly received: Array<Received>; readonly close: () => Promise<void> }>(
    (resume) => {
      const received: Array<Received> = []
      const server = createServer((request, response) => {
        const chunks: Array<Buffer> = []
        request.on("data", (chunk: Buffer) => chunks.push(chunk))
        request.on("end", () => {
          const raw = Buffer.concat(chunks)
          const body = request.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw
          received.push({
            path: request.url,
            contentType: request.headers["content-type"],
            body: body.toString("utf8")
          })
          response.writeHead(200, { "content-type": "application/json" }).end("{}")
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        resume(
          Effect.succeed({
            url: `http://127.0.0.1:${port}`,
            received,
            close: () => new Promise<void>((resolve) => server.close(() => resolve()))
          })
        )
      })
    }
  ),
  (collector) => Effect.promise(collector.close)
)

// The part of OTLP/JSON (ExportTraceServiceRequest) this test reads.
const AnyValue = Schema.Struct({
  stringValue: Schema.optional(Schema.String),
  intValue: Schema.optional(Schema.Union(Schema.Number, Schema.String)),
  doubleValue: Schema.optional(Schema.Number),
  boolValue: Schema.optional(Schema.Boolean)
})
const Attributes = Schema.Array(Schema.Struct({ key: Schema.String, value: AnyValue }))
const OtlpSpan = Schema.Struct({
  traceId: Schema.String,
  spanId: Schema.String,
  parentSpanId: Schema.optional(Schema.String),
  name: Schema.String,
  kind: Schema.Number,
  attributes: Schema.optionalWith(Attributes, { default: () => [] })
})
const ExportRequest = Schema.Struct({
  resourceSpans: Schema.Array(
    Schema.Struct({
      resource: Schema.Struct({ attributes: Attributes }),
      scopeSpans: Schema.Array(
        Schema.Struct({ spans: Schema.optionalWith(Schema.Array(OtlpSpan), { default: () => [] }) })
      )
    })
  )
})

interface Span {
  readonly service: unknown
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId: string | undefined
  readonly name: string
  readonly kind: number
  readonly attributes: Record<string, unknown>
}

const valueOf = (value: typeof AnyValue.Type): unknown =>
  value.stringValue ??
  (value.intValue === undefined ? undefined : Number(value.intValue)) ??
  value.doubleValue ??
  value.boolValue

const attributesOf = (attributes: typeof Attributes.Type) =>
  Object.fromEntries(attributes.map((attribute) => [attribute.key, valueOf(attribute.value)]))

const spansOf = (received: ReadonlyArray<Received>): Array<Span> =>
  received.flatMap((request) => {
    const decoded = Schema.decodeUnknownSync(Schema.parseJson(ExportRequest))(request.body)
    return decoded.resourceSpans.flatMap((resourceSpans) => {
      const service = attributesOf(resourceSpans.resource.attributes)["service.name"]
      return resourceSpans.scopeSpans.flatMap((scope) =>
        scope.spans.map((span) => ({
          service,
          traceId: span.traceId,
          spanId: span.spanId,
          // The JSON exporter writes an empty string for a root span.
          parentSpanId: span.parentSpanId === "" ? undefined : span.parentSpanId,
          name: span.name,
          kind: span.kind,
          attributes: attributesOf(span.attributes)
        }))
      )
    })
  })

// OTLP span kinds.
const SERVER = 2
const PRODUCER = 4
const CONSUMER = 5

it.scopedLive(
  "one session's trace holds the request, the job, every phase and the provider attempts",
  () =>
    Effect.gen(function* () {
      const collector = yield* fakeCollector
      const config = {
        REDIS_URL: process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379",
        QUEUE_PREFIX: `wm-test-${randomBytes(4).toString("hex")}`,
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
        OTEL_SERVICE_NAME: "wingmate-test"
      }
      const tracing = TracingLive("dev").pipe(
        Layer.provide(AppConfig.Default),
        Layer.provide(Logger.minimumLogLevel(LogLevel.None)),
        Layer.provide(testConfig(config))
      )
      const server = testServer({ db: TestDb(), redis: Redis.layer, config, consumer: true }).pipe(
        Layer.provide(tracing)
      )

      // The server lives in a scope of its own: closing it flushes the exporter (no waiting on its timer).
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(server, scope)
      const { session, token } = yield* Effect.gen(function* () {
        const url = yield* baseUrl
        const { alice } = yield* twoUsers(url)
        const uploadId = yield* uploadPng(url, alice.headers, screenshot)
        const created = yield* createSession(url, alice.headers, { uploadIds: [uploadId] })
        expect(created.status).toBe(202)
        const session = yield* awaitFinished(url, alice.headers, (created.body as { data: WireSession }).data.id)
        expect(session.status).toBe("completed")
        return { session, token: alice.token }
      }).pipe(Effect.provide(context))
      yield* Scope.close(scope, Exit.void)

      expect(collector.received.length).toBeGreaterThan(0)
      for (const request of collector.received) {
        expect(request.path).toBe("/v1/traces")
        expect(request.contentType).toMatch(/^application\/json/)
      }
      const spans = spansOf(collector.received)
      expect(new Set(spans.map((span) => span.service))).toEqual(new Set(["wingmate-test"]))

      // The request that created the session: the platform's server span, with its route and status.
      const posts = spans.filter((span) => span.kind === SERVER && span.attributes["http.route"] === "/api/v1/sessions")
      expect(posts.map((span) => [span.name, span.attributes["http.request.method"]])).toEqual([
        ["http.server POST", "POST"]
      ])
      const request = posts[0]
      if (request === undefined) return expect.unreachable()
      expect(request.attributes["http.response.status_code"]).toBe(202)
      expect(request.attributes["url.path"]).toBe("/api/v1/sessions")
      expect(request.attributes["http.request.header.authorization"]).toBe("<redacted>")
      expect(typeof request.attributes["http.request.id"]).toBe("string")

      const trace = spans.filter((span) => span.traceId === request.traceId)
      const byId = new Map(trace.map((span) => [span.spanId, span]))
      const parentOf = (span: Span) => (span.parentSpanId === undefined ? undefined : byId.get(span.parentSpanId))
      const one = (name: string, where: (span: Span) => boolean = () => true) => {
        const found = trace.filter((span) => span.name === name && where(span))
        expect(found, name).toHaveLength(1)
        return found[0] as Span
      }

      // request → queue.enqueue (producer) → queue.job (consumer, through Redis) → sessions.job
      const enqueue = one("queue.enqueue")
      expect(enqueue.kind).toBe(PRODUCER)
      let ancestor = parentOf(enqueue)
      while (ancestor !== undefined && ancestor !== request) ancestor = parentOf(ancestor)
      expect(ancestor).toBe(request)
      const queueJob = one("queue.job")
      expect(queueJob.kind).toBe(CONSUMER)
      expect(parentOf(queueJob)).toBe(enqueue)
      expect(queueJob.attributes).toMatchObject({ "job.id": session.id, "job.attempt": 1, "job.outcome": "completed" })
      const job = one("sessions.job")
      expect(parentOf(job)).toBe(queueJob)
      expect(job.attributes["session.id"]).toBe(session.id)

      // Each phase, in the job.
      const phases = trace.filter((span) => span.name === "sessions.phase")
      expect(phases.map((span) => span.attributes["session.phase"])).toEqual(
        expect.arrayContaining(["normalise", "ocr", "transcript", "suggestions"])
      )
      expect(phases).toHaveLength(4)
      for (const phase of phases) {
        expect(parentOf(phase)).toBe(job)
        expect(phase.attributes["session.id"]).toBe(session.id)
      }
      const phase = (name: string) => one("sessions.phase", (span) => span.attributes["session.phase"] === name)

      // Provider attempts (no AI key: the local provider writes the suggestions; the screenshot is
      // read by local OCR, which is no provider), under the phase that made them.
      const within = (span: Span, phaseSpan: Span) => {
        for (let at = parentOf(span); at !== undefined; at = parentOf(at)) if (at === phaseSpan) return true
        return false
      }
      const attempts = trace.filter((span) => span.name === "ai.attempt")
      expect(attempts.length).toBeGreaterThan(0)
      for (const attempt of attempts) {
        expect(attempt.attributes).toMatchObject({
          "ai.provider": "local",
          "ai.model": "local-deterministic",
          "ai.outcome": "ok"
        })
      }
      for (const attempt of attempts) expect(within(attempt, phase("suggestions"))).toBe(true)
      const read = one("ocr.read")
      expect(within(read, phase("ocr"))).toBe(true)
      expect(parentOf(one("ocr.local"))).toBe(read)
      expect(within(one("ImageProcessor.normalizeImage"), phase("normalise"))).toBe(true)
      // The thumbnail is made while the screenshot is read, in the session's job.
      expect(one("ImageProcessor.thumbnailOf").traceId).toBe(read.traceId)

      // Privacy: no token, no query value, no message text in any span of any trace. The upload's
      // PUT to local storage had its signature in the query: only the names are left.
      const put = spans.find((span) => span.attributes["http.request.method"] === "PUT")
      expect(put?.attributes["url.query"]).toMatch(/(^|&)signature(&|$)/)
      const texts = session.transcript.map((message) => message.text).concat(session.suggestions.map((s) => s.text))
      for (const span of spans) {
        for (const [key, value] of Object.entries(span.attributes)) {
          const text = String(value)
          expect(text, key).not.toContain(token)
          if (key === "url.query") expect(text, key).not.toContain("=")
          if (key === "url.full") expect(text, key).not.toContain("?")
          for (const message of texts) expect(text, key).not.toContain(message)
        }
      }
    }),
  { timeout: 120_000 }
)
