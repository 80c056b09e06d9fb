/**
 * Judges one HTTP response against the OpenAPI document: the operation is found by method and
 * path (path templates), then the status must be documented for it (or a `4XX`-style range, or
 * `default`), the content type must be one the documented response has, a JSON body must validate
 * against the documented schema (Ajv, JSON Schema 2020-12 as OpenAPI 3.1 uses; `$ref`s resolve in
 * the document), and the documented required headers must be there with values of their schema.
 * A response whose method and path match no operation is not judged (`undefined`).
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js"

export interface ObservedResponse {
  readonly method: string
  /** The path, percent-encoded as sent; a query string is ignored. */
  readonly path: string
  readonly status: number
  readonly headers: Headers
  /** The body's text; undefined when it was not read (an event stream). */
  readonly body: string | undefined
}

export interface Violation {
  readonly method: string
  readonly path: string
  readonly status: number
  readonly operationId: string
  readonly problems: ReadonlyArray<string>
}

type Json = Record<string, unknown>

const isRecord = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value)

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

/** JSON Pointer escaping (RFC 6901), then URI fragment escaping. */
const pointerSegment = (segment: string) => encodeURIComponent(segment.replaceAll("~", "~0").replaceAll("/", "~1"))

const DOCUMENT_ID = "https://wingmate.invalid/openapi.json"

interface Operation {
  readonly template: string
  readonly method: string
  readonly operationId: string
  readonly pattern: RegExp
  readonly parameters: number
  readonly responses: Json
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

const templatePattern = (template: string) =>
  new RegExp(
    `^${template
      .split(/(\{[^}]+\})/)
      .map((part) => (/^\{[^}]+\}$/.test(part) ? "[^/]+" : escapeRegExp(part)))
      .join("")}$`
  )

const mediaTypeOf = (contentType: string | null): string | undefined =>
  contentType === null ? undefined : contentType.split(";")[0]?.trim().toLowerCase()

const isJsonMedia = (media: string) => media === "application/json" || media.endsWith("+json")

/** `application/*` and `*\/*` as OpenAPI allows them in content keys. */
const mediaMatches = (documented: string, actual: string) => {
  const key = documented.toLowerCase()
  if (key === actual || key === "*/*") return true
  return key.endsWith("/*") && actual.startsWith(key.slice(0, -1))
}

const formatError = (error: ErrorObject) => {
  const where = error.instancePath === "" ? "(body)" : error.instancePath
  const params = Object.keys(error.params).length > 0 ? ` ${JSON.stringify(error.params)}` : ""
  return `${where} ${error.message ?? error.keyword}${params}`
}

const MAX_SCHEMA_ERRORS = 10

export const makeConformance = (document: unknown) => {
  if (!isRecord(document) || !isRecord(document["paths"])) throw new Error("Not an OpenAPI document")
  const root = document
  const components = isRecord(root["components"]) ? root["components"] : {}

  const operations: Array<Operation> = Object.entries(isRecord(root["paths"]) ? root["paths"] : {})
    .flatMap(([template, item]) =>
      Object.entries(isRecord(item) ? item : {})
        .filter(([method]) => METHODS.includes(method))
        .map(([method, operation]): Operation | undefined =>
          isRecord(operation) && isRecord(operation["responses"])
            ? {
                template,
                method,
                operationId:
                  typeof operation["operationId"] === "string" ? operation["operationId"] : `${method} ${template}`,
                pattern: templatePattern(template),
                parameters: (template.match(/\{/g) ?? []).length,
                responses: operation["responses"]
              }
            : undefined
        )
    )
    .filter((operation) => operation !== undefined)
    // A literal segment wins over a template (`/users/me/export` before `/users/{id}/export`).
    .sort((a, b) => a.parameters - b.parameters)

  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false, validateSchema: false })
  ajv.addSchema({ ...root, $id: DOCUMENT_ID })
  const validators = new Map<string, ValidateFunction>()
  const validatorAt = (pointer: string): ValidateFunction => {
    const known = validators.get(pointer)
    if (known !== undefined) return known
    const compiled = ajv.getSchema(`${DOCUMENT_ID}#${pointer}`)
    if (compiled === undefined) throw new Error(`No schema at ${pointer}`)
    validators.set(pointer, compiled)
    return compiled
  }

  /** A `$ref` to `#/components/<kind>/<name>` resolved (one level, as the generator writes them). */
  const resolve = (value: unknown, kind: string): unknown => {
    if (!isRecord(value) || typeof value["$ref"] !== "string") return value
    const prefix = `#/components/${kind}/`
    const kindComponents = components[kind]
    return value["$ref"].startsWith(prefix) && isRecord(kindComponents)
      ? kindComponents[value["$ref"].slice(prefix.length)]
      : undefined
  }

  const operationFor = (method: string, path: string): Operation | undefined => {
    const bare = path.split("?")[0] ?? path
    return operations.find((operation) => operation.method === method.toLowerCase() && operation.pattern.test(bare))
  }

  const headerProblems = (responseDef: Json, headers: Headers): Array<string> =>
    Object.entries(isRecord(responseDef["headers"]) ? responseDef["headers"] : {}).flatMap(([name, declared]) => {
      const header = resolve(declared, "headers")
      if (!isRecord(header) || name.toLowerCase() === "content-type") return []
      const value = headers.get(name)
      if (value === null) return header["required"] === true ? [`the required header ${name} is missing`] : []
      const schema = isRecord(header["schema"]) ? header["schema"] : {}
      if (schema["type"] === "integer") {
        const number = /^-?\d+$/.test(value.trim()) ? Number(value) : Number.NaN
        const minimum = typeof schema["minimum"] === "number" ? schema["minimum"] : -Infinity
        if (!Number.isInteger(number) || number < minimum)
          return [`header ${name}: ${JSON.stringify(value)} is not an integer >= ${minimum}`]
      }
      if (typeof schema["pattern"] === "string" && !new RegExp(schema["pattern"]).test(value))
        return [`header ${name}: ${JSON.stringify(value)} does not match ${schema["pattern"]}`]
      return []
    })

  const bodyProblems = (operation: Operation, status: string, responseDef: Json, response: ObservedResponse) => {
    const content = isRecord(responseDef["content"]) ? responseDef["content"] : {}
    const documented = Object.keys(content)
    const media = mediaTypeOf(response.headers.get("content-type"))
    if (documented.length === 0) {
      return response.body !== undefined && response.body.length > 0
        ? [`a body (${media ?? "no content-type"}) where none is documented`]
        : []
    }
    if (media === undefined) return [`no content-type; documented: ${documented.join(", ")}`]
    const key = documented.find((candidate) => mediaMatches(candidate, media))
    if (key === undefined) return [`content-type ${media} is not documented; documented: ${documented.join(", ")}`]
    const mediaDef = content[key]
    if (!isJsonMedia(media) || response.body === undefined || !isRecord(mediaDef) || mediaDef["schema"] === undefined)
      return []
    let body: unknown
    try {
      body = JSON.parse(response.body)
    } catch {
      return [`the body is not JSON (content-type ${media})`]
    }
    const pointer = ["paths", operation.template, operation.method, "responses", status, "content", key, "schema"]
      .map((segment) => `/${pointerSegment(segment)}`)
      .join("")
    const validate = validatorAt(pointer)
    if (validate(body)) return []
    const errors = validate.errors ?? []
    return [
      `the body does not match the documented schema: ${errors.slice(0, MAX_SCHEMA_ERRORS).map(formatError).join("; ")}` +
        (errors.length > MAX_SCHEMA_ERRORS ? ` (and ${errors.length - MAX_SCHEMA_ERRORS} more)` : "")
    ]
  }

  const check = (response: ObservedResponse): Violation | undefined => {
    const operation = operationFor(response.method, response.path)
    if (operation === undefined) return undefined
    const status = String(response.status)
    const key = [status, `${status.charAt(0)}XX`, `${status.charAt(0)}xx`, "default"].find(
      (candidate) => candidate in operation.responses
    )
    const violation = (problems: ReadonlyArray<string>): Violation | undefined =>
      problems.length === 0
        ? undefined
        : {
            method: response.method.toUpperCase(),
            path: response.path,
            status: response.status,
            operationId: operation.operationId,
            problems
          }
    if (key === undefined) {
      return violation([
        `status ${status} is not documented for ${operation.operationId} (documented: ${Object.keys(operation.responses).join(", ")})`
      ])
    }
    const responseDef = resolve(operation.responses[key], "responses")
    if (!isRecord(responseDef)) return violation([`the documented response ${key} cannot be resolved`])
    return violation([
      ...bodyProblems(operation, key, responseDef, response),
      ...headerProblems(responseDef, response.headers)
    ])
  }

  return {
    /** The operation a request goes to, by method and path; undefined when none. */
    operationFor: (method: string, path: string) => operationFor(method, path)?.operationId,
    check
  }
}

export type Conformance = ReturnType<typeof makeConformance>

/** A path as shown in a report: a fuzzed one may be kilobytes long. */
const shortPath = (path: string) => (path.length <= 120 ? path : `${path.slice(0, 120)}…`)

export const formatViolations = (violations: ReadonlyArray<Violation>): string =>
  [
    `${violations.length} response(s) do not conform to the OpenAPI document:`,
    ...violations.map(
      (violation) =>
        `  ${violation.method} ${shortPath(violation.path)} → ${violation.status} (${violation.operationId}):\n` +
        violation.problems.map((problem) => `    - ${problem}`).join("\n")
    )
  ].join("\n")
