/**
 * The interactive API reference at `/docs` (Scalar), served without inline script so that a strict
 * Content-Security-Policy holds: a small HTML page that points the viewer at `/openapi.json`, and
 * the viewer's bundle as a static, cacheable script at `/docs/scalar.js`. The stock
 * `HttpApiScalar` page inlines the 3.4 MB bundle and the document in one response with no CSP.
 * Off with `API_DOCS_ENABLED=false` (the default in production); rate limited per address
 * (`RATE_LIMIT_DOCS_IP`, rate-limit.ts).
 */
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, Layer, Schema } from "effect"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { pathToFileURL } from "node:url"
import { AppConfig } from "../config.ts"

export const DOCS_PATH = "/docs"
export const DOCS_SCRIPT_PATH = "/docs/scalar.js"

/**
 * Scripts only from this origin, no eval; the viewer compiles a WebAssembly module (so
 * `'wasm-unsafe-eval'`, which allows WebAssembly and not `eval`), injects its own styles at run
 * time (so `'unsafe-inline'` for styles only), and fetches the document and "try it" calls from
 * this origin. Checked in a real browser: without the first, the reference stays a skeleton.
 */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join("; ")

/**
 * The Scalar bundle @effect/platform ships (the version its HttpApiScalar serves). It is not in
 * the package's exports, so it is loaded by file; the shape is checked, and a test serves it.
 */
const ScalarBundle = Schema.Struct({ javascript: Schema.String.pipe(Schema.minLength(1)) })

const loadBundle = Effect.gen(function* () {
  const platformRoot = dirname(createRequire(import.meta.url).resolve("@effect/platform/package.json"))
  const file = pathToFileURL(join(platformRoot, "dist", "esm", "internal", "httpApiScalar.js")).href
  const module = yield* Effect.tryPromise(() => import(file)).pipe(Effect.orDie)
  return (yield* Schema.decodeUnknown(ScalarBundle)(module).pipe(Effect.orDie)).javascript
})

const page = (title: string) => `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>${title}</title>
    <meta name="viewport" content="width=device-width, initial-scale=1" />
  </head>
  <body>
    <script id="api-reference" data-url="/openapi.json" data-configuration='{"_integration":"html","withDefaultFonts":false}'></script>
    <script src="${DOCS_SCRIPT_PATH}"></script>
  </body>
</html>
`

const csp = { "content-security-policy": DOCS_CSP }

/** The reference's two routes, or nothing when the docs are off. */
export const DocsRoutes = Layer.unwrapEffect(
  Effect.gen(function* () {
    const config = yield* AppConfig
    if (!config.docsEnabled) return Layer.empty
    const script = yield* loadBundle
    const html = HttpServerResponse.html(page("Wingmate API")).pipe(
      HttpServerResponse.setHeaders({ ...csp, "cache-control": "no-cache" })
    )
    return HttpLayerRouter.addAll([
      HttpLayerRouter.route("GET", DOCS_PATH, Effect.succeed(html)),
      HttpLayerRouter.route(
        "GET",
        DOCS_SCRIPT_PATH,
        Effect.succeed(
          HttpServerResponse.text(script, { contentType: "text/javascript; charset=utf-8" }).pipe(
            // The bundle changes only with @effect/platform's version: an hour in the browser's cache.
            HttpServerResponse.setHeaders({ ...csp, "cache-control": "public, max-age=3600" })
          )
        )
      )
    ])
  })
)
