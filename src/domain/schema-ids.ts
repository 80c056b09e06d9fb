/**
 * Effect's JSON Schema generator marks `Schema.Unknown`, `Schema.Any`, `Schema.Object`… with an
 * `$id` such as `/schemas/unknown`, the same on each of their uses. In OpenAPI 3.1 (JSON Schema
 * 2020-12) an `$id` names a schema resource: the document would then hold 26 different schemas
 * named `/schemas/unknown`, which validators refuse (Ajv: "resolves to more than one schema") and
 * which change the base URI of nothing useful. An `OpenApi.Transform` for the whole API drops them.
 */

const EFFECT_MARKER = /^\/schemas\//

const strip = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(strip)
  if (typeof value !== "object" || value === null) return value
  return Object.fromEntries(
    Object.entries(value)
      .filter(([key, inner]) => !(key === "$id" && typeof inner === "string" && EFFECT_MARKER.test(inner)))
      .map(([key, inner]) => [key, strip(inner)])
  )
}

export const withoutSchemaMarkers = (spec: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(spec).map(([key, value]) => [key, key === "info" ? value : strip(value)]))
