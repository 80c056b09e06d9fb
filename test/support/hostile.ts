/**
 * Hostile input for the property-based suites: values shaped by a JSON Schema (the OpenAPI
 * document's, or `JSONSchema.make` of a contract) whose leaves are hostile strings (NUL, lone
 * surrogates, bidi marks, emoji, 1 MB), and the shapes that break parsers and formatters (wrong
 * types, deep nesting, huge arrays). A new route or field is covered without editing a test.
 */
import { fc } from "@fast-check/vitest"
import { JSONSchema, type SchemaAST } from "effect"

export type JsonSchema = { readonly [key: string]: unknown }

export const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null

/** The JSON Schema of a contract (`$defs` included), as the generators read it. */
export const jsonSchemaOf = (ast: SchemaAST.AST): JsonSchema => {
  const definitions: Record<string, JSONSchema.JsonSchema7> = {}
  const schema: unknown = JSONSchema.fromAST(ast, { definitions })
  return { ...(isRecord(schema) ? schema : {}), $defs: definitions }
}

const ONE_MB = "x".repeat(1024 * 1024)

/** Strings no field should choke on. `big` allows the 1 MB one (bodies), not URLs (a URL that long is refused by Node itself). */
export const hostileString = (options: { readonly big?: boolean } = {}): fc.Arbitrary<string> =>
  fc.oneof(
    {
      arbitrary: fc.constantFrom("\u0000", "a\u0000b", "\ud800", "x\udc00y", "\udfff\ud800", "\u0007\u001b[2J"),
      weight: 4
    },
    {
      arbitrary: fc.constantFrom("\u202eevil\u202c", "\u200f\u200eRTL", "\ufeffbom", "😀👍🏽👨‍👩‍👧", "e\u0301\u0301\u0301"),
      weight: 3
    },
    {
      arbitrary: fc.constantFrom("", " ", "\t\n\r", "%00", "../../etc/passwd", "' OR 1=1 --", "<script>x</script>"),
      weight: 2
    },
    { arbitrary: fc.string({ unit: "binary", maxLength: 40 }), weight: 3 },
    { arbitrary: fc.string({ unit: "grapheme", maxLength: 40 }), weight: 2 },
    { arbitrary: fc.constant("a".repeat(5_000)), weight: 1 },
    ...(options.big === true ? [{ arbitrary: fc.constant(ONE_MB), weight: 1 }] : [])
  )

/** Values of the wrong type for any field. */
export const wrongType: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, 0, -1, 1e308, 3.5, [], {}, [null], { "": null }, "string"),
  fc.jsonValue({ maxDepth: 3 })
)

/** The target of a local `$ref` (`#/components/schemas/X` or `#/$defs/X`) in `root`. */
const resolve = (root: JsonSchema, ref: string): JsonSchema => {
  let node: unknown = root
  for (const part of ref.replace(/^#\//, "").split("/")) node = isRecord(node) ? node[part] : undefined
  return isRecord(node) ? node : {}
}

const validString = (schema: JsonSchema): fc.Arbitrary<string> => {
  if (Array.isArray(schema["enum"])) return fc.constantFrom(...schema["enum"].map(String))
  if (typeof schema["pattern"] === "string")
    return fc.stringMatching(new RegExp(schema["pattern"])).map((s) => s.slice(0, 64))
  return fc.string({ minLength: 1, maxLength: 20 })
}

/**
 * A value shaped by `schema` (objects with their properties, arrays of their items, enums),
 * string leaves mostly hostile, some leaves of the wrong type, now and then a huge array.
 */
export const shapedBy = (root: JsonSchema, schema: JsonSchema, depth = 0): fc.Arbitrary<unknown> => {
  if (depth > 6) return wrongType
  const ref = schema["$ref"]
  if (typeof ref === "string") return shapedBy(root, resolve(root, ref), depth + 1)
  const alternatives = schema["anyOf"] ?? schema["oneOf"]
  if (Array.isArray(alternatives) && alternatives.length > 0) {
    return fc.oneof(...alternatives.filter(isRecord).map((alternative) => shapedBy(root, alternative, depth + 1)))
  }
  if ("const" in schema) return fc.oneof(fc.constant(schema["const"]), hostileString({ big: true }))
  if (Array.isArray(schema["enum"]) && schema["enum"].length > 0) {
    return fc.oneof(
      { arbitrary: fc.constantFrom(...schema["enum"]), weight: 3 },
      { arbitrary: hostileString(), weight: 1 }
    )
  }
  // Mostly a valid value or one with a hostile character in it, so that requests get past the
  // first check and reach the deeper ones (and the database).
  const leaf = (valid: fc.Arbitrary<unknown>) =>
    fc.oneof(
      { arbitrary: valid, weight: 3 },
      { arbitrary: fc.tuple(validString(schema), hostileString()).map(([a, b]) => `${a}${b}`), weight: 3 },
      { arbitrary: hostileString({ big: true }), weight: 2 },
      { arbitrary: wrongType, weight: 1 }
    )
  switch (schema["type"]) {
    case "object": {
      const properties = isRecord(schema["properties"]) ? schema["properties"] : {}
      const fields = Object.fromEntries(
        Object.entries(properties).map(([key, value]) => [key, shapedBy(root, isRecord(value) ? value : {}, depth + 1)])
      )
      const required = (Array.isArray(schema["required"]) ? schema["required"] : []).filter(
        (key): key is string => typeof key === "string" && key in fields
      )
      return fc.oneof(
        { arbitrary: fc.record(fields, { requiredKeys: required }), weight: 6 },
        { arbitrary: fc.record(fields, { requiredKeys: [] }), weight: 2 },
        // An unknown key, itself hostile.
        {
          arbitrary: fc
            .tuple(fc.record(fields, { requiredKeys: [] }), hostileString(), wrongType)
            .map(([value, key, extra]) => ({ ...value, [key]: extra })),
          weight: 1
        },
        { arbitrary: wrongType, weight: 1 }
      )
    }
    case "array": {
      const items = isRecord(schema["items"]) ? shapedBy(root, schema["items"], depth + 1) : wrongType
      return fc.oneof(
        { arbitrary: fc.array(items, { maxLength: 5 }), weight: 6 },
        { arbitrary: fc.constant(Array.from({ length: 100_000 }, (_, i) => i)), weight: 1 },
        { arbitrary: wrongType, weight: 1 }
      )
    }
    case "string":
      return leaf(validString(schema))
    case "integer":
      return leaf(fc.integer({ min: -2, max: 200 }))
    case "number":
      return leaf(fc.double({ noNaN: true }))
    case "boolean":
      return leaf(fc.boolean())
    case "null":
      return fc.constant(null)
    default:
      return fc.oneof(wrongType, hostileString())
  }
}

/** `[[[[…]]]]` of `depth` levels, as JSON text. */
export const nestedJson = (depth: number) => "[".repeat(depth) + "]".repeat(depth)

/** The first property of an object schema (following `$ref`s), where a nested or huge value is decoded. */
const firstProperty = (root: JsonSchema, schema: JsonSchema): string | undefined => {
  const ref = schema["$ref"]
  if (typeof ref === "string") return firstProperty(root, resolve(root, ref))
  const alternatives = schema["anyOf"] ?? schema["oneOf"]
  if (Array.isArray(alternatives)) {
    return alternatives
      .filter(isRecord)
      .reduce<string | undefined>((found, a) => found ?? firstProperty(root, a), undefined)
  }
  return isRecord(schema["properties"]) ? Object.keys(schema["properties"])[0] : undefined
}

/**
 * Raw JSON that breaks parsers and formatters: nested far beyond the limit, a huge array, many
 * keys, or garbage. `wrap` puts the value where it is decoded (e.g. a frame's field).
 */
export const breakingJsonText = (wrap: (value: string) => string): fc.Arbitrary<string> =>
  fc.oneof(
    fc.integer({ min: 65, max: 200_000 }).map((depth) => wrap(nestedJson(depth))),
    fc.integer({ min: 65, max: 10_000 }).map((depth) => wrap('{"a":'.repeat(depth) + "1" + "}".repeat(depth))),
    fc.constant(wrap("[" + "0,".repeat(200_000) + "0]")),
    fc.constant(wrap("{" + Array.from({ length: 50_000 }, (_, i) => `"k${i}":${i}`).join(",") + "}")),
    fc.constantFrom("{", '{"a":"\\ud800"}', "\u0000", "nul", "[]", '""')
  )

/**
 * The raw JSON text of a body: mostly a value shaped by `schema` (JSON.stringify writes NUL and
 * lone surrogates as `\u0000` / `\ud800` escapes, which the server decodes back), else breaking
 * JSON under the schema's first field.
 */
export const hostileJsonText = (root: JsonSchema, schema: JsonSchema): fc.Arbitrary<string> => {
  const key = firstProperty(root, schema) ?? "a"
  return fc.oneof(
    { arbitrary: shapedBy(root, schema).map((value) => JSON.stringify(value) ?? "null"), weight: 8 },
    { arbitrary: breakingJsonText((value) => `{${JSON.stringify(key)}:${value}}`), weight: 2 }
  )
}

/** A path or query parameter value, percent-encoded (lone surrogates as their WTF-8 bytes, which are not UTF-8). */
export const encodeParam = (value: string): string =>
  value.replace(/\p{Cs}|[^\p{Cs}]+/gu, (part) => {
    if (!/^\p{Cs}$/u.test(part)) return encodeURIComponent(part)
    const cp = part.charCodeAt(0)
    return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)]
      .map((byte) => `%${byte.toString(16).toUpperCase()}`)
      .join("")
  })

/** The failure envelope `{ success: false, error: { code, message, details? } }`, or why not. */
export const envelopeProblem = (status: number, body: unknown, codes: ReadonlyArray<string>): string | undefined => {
  if (!isRecord(body)) return "the body is not a JSON object"
  if (status < 400) return body["success"] === true && "data" in body ? undefined : "not a success envelope"
  const error = body["error"]
  if (body["success"] !== false || !isRecord(error)) return "not a failure envelope"
  if (typeof error["code"] !== "string" || !codes.includes(error["code"]))
    return `unknown code ${String(error["code"])}`
  if (typeof error["message"] !== "string") return "no message"
  const extra = Object.keys(error).filter((key) => !["code", "message", "details"].includes(key))
  return extra.length > 0 ? `unexpected keys ${extra.join(", ")}` : undefined
}
