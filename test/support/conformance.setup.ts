/**
 * The conformance harness (issue #16), a `setupFiles` entry of the integration and e2e projects:
 * every response the suites receive through `fetch` from a server on this machine is judged against
 * the OpenAPI document (`/openapi.json`, built here from the same `WingmateApi`), when its method
 * and path match an operation (test/support/openapi-conformance.ts). A violation fails the running
 * test, from an `afterEach`, with the method, path, status and what is wrong. Event streams are
 * judged by their content type only; other bodies are read from a clone, so the test reads its own.
 */
import { afterEach } from "vitest"
import { openApiDocument } from "../../src/domain/openapi.ts"
import { formatViolations, makeConformance, type Violation } from "./openapi-conformance.ts"

const conformance = makeConformance(JSON.parse(JSON.stringify(openApiDocument())))

const LOCAL_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"])

const pending = new Set<Promise<void>>()
/** Origins of local servers that are not the API (a worker's liveness probe): not judged. */
const notTheApi = new Set<string>()
const violations: Array<Violation> = []

const urlOf = (input: string | URL | Request): string =>
  typeof input === "string" ? input : input instanceof URL ? input.href : input.url

const methodOf = (input: string | URL | Request, init: RequestInit | undefined): string =>
  init?.method ?? (input instanceof Request ? input.method : "GET")

const observe = async (method: string, url: URL, response: Response) => {
  const eventStream = (response.headers.get("content-type") ?? "").toLowerCase().startsWith("text/event-stream")
  // A body that cannot be read (the test aborted the request) is not judged.
  const body = eventStream ? undefined : await response.text().catch(() => null)
  if (body === null) return
  try {
    const violation = conformance.check({
      method,
      path: url.pathname,
      status: response.status,
      headers: response.headers,
      body
    })
    if (violation !== undefined) violations.push(violation)
  } catch (error) {
    const problem = `the harness could not judge it: ${error instanceof Error ? error.message : String(error)}`
    violations.push({ method, path: url.pathname, status: response.status, operationId: "?", problems: [problem] })
  }
}

const originalFetch = globalThis.fetch

/** Marks the wrapped `fetch`, so a test can tell that the harness is active. */
export const CONFORMANCE = Symbol.for("wingmate.conformance")

const conformingFetch = Object.assign(
  async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const method = methodOf(input, init)
    const response = await originalFetch(input, init)
    const url = new URL(response.url === "" ? urlOf(input) : response.url)
    const judged =
      LOCAL_HOSTS.has(url.hostname) &&
      !notTheApi.has(url.origin) &&
      conformance.operationFor(method, url.pathname) !== undefined
    if (judged) {
      const eventStream = (response.headers.get("content-type") ?? "").toLowerCase().startsWith("text/event-stream")
      const observed = observe(method, url, eventStream ? response : response.clone())
      pending.add(observed)
      void observed.finally(() => pending.delete(observed))
    }
    return response
  },
  { [CONFORMANCE]: true }
)

globalThis.fetch = conformingFetch

/**
 * Marks a local server as not the API (its paths may look like the API's, its answers are its own):
 * its responses are not judged against the document.
 */
export const notTheApiServer = (origin: string) => {
  notTheApi.add(new URL(origin).origin)
}

/** Waits for the responses still being read, and hands over (and clears) what was found. */
export const takeViolations = async (): Promise<Array<Violation>> => {
  await Promise.all([...pending])
  return violations.splice(0)
}

afterEach(async () => {
  const found = await takeViolations()
  if (found.length > 0) throw new Error(formatViolations(found))
})
