/**
 * A path parameter the router cannot take (over its length limit, or percent-encoding that is
 * not UTF-8) never reaches the operation: the server answers 404 `ROUTE_NOT_FOUND`, as for any
 * path it does not know. An `OpenApi.Transform` for the whole API adds that envelope to the 404 of
 * every operation with path parameters (the generator only knows errors an endpoint declares).
 * The envelope's schema joins `components.schemas` through `HttpApi.AdditionalSchemas` (api.ts).
 */

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

const ROUTE_NOT_FOUND = { $ref: "#/components/schemas/RouteNotFoundEnvelope" }
const WHEN = "404 ROUTE_NOT_FOUND: a path parameter the router cannot take (too long, or not UTF-8)"

const with404 = (operation: unknown): unknown => {
  if (!isRecord(operation) || !isRecord(operation["responses"])) return operation
  const existing = operation["responses"]["404"]
  const content = isRecord(existing) && isRecord(existing["content"]) ? existing["content"] : {}
  const json = isRecord(content["application/json"]) ? content["application/json"] : {}
  const schema = json["schema"]
  const merged =
    schema === undefined
      ? ROUTE_NOT_FOUND
      : isRecord(schema) && Array.isArray(schema["anyOf"])
        ? { ...schema, anyOf: [...schema["anyOf"], ROUTE_NOT_FOUND] }
        : { anyOf: [schema, ROUTE_NOT_FOUND] }
  const description =
    isRecord(existing) && typeof existing["description"] === "string" ? `${existing["description"]}; ${WHEN}` : WHEN
  return {
    ...operation,
    responses: {
      ...operation["responses"],
      "404": {
        ...(isRecord(existing) ? existing : {}),
        description,
        content: { ...content, "application/json": { ...json, schema: merged } }
      }
    }
  }
}

export const withUnroutablePaths = (spec: Record<string, unknown>): Record<string, unknown> => {
  const paths = isRecord(spec["paths"]) ? spec["paths"] : {}
  const documented = Object.entries(paths).map(([path, item]) => [
    path,
    isRecord(item) && path.includes("{")
      ? Object.fromEntries(Object.entries(item).map(([method, operation]) => [method, with404(operation)]))
      : item
  ])
  return { ...spec, paths: Object.fromEntries(documented) }
}
