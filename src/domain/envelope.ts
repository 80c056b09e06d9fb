/**
 * The seed's success envelope `{ success: true, data }`. Handlers return the bare value; the
 * envelope exists only on the wire, so OpenAPI and typed clients see exactly what is sent.
 */
import { Option, Schema, SchemaAST } from "effect"

/**
 * The bare value's side of the envelope. `data` itself checks the value while encoding it (and
 * decoding produces it), so this side does not walk it a second time, as `Schema.typeSchema(data)`
 * would: a list response of 20 items was validated twice per request.
 */
const unwrapped = <A, I, R>(data: Schema.Schema<A, I, R>) => {
  const typeSide = Schema.typeSchema(data).ast
  // OpenAPI names the response after the value's identifier (or title).
  const name = Option.orElse(SchemaAST.getIdentifierAnnotation(typeSide), () => SchemaAST.getTitleAnnotation(typeSide))
  return Schema.declare((_: unknown): _ is A => true, Option.isSome(name) ? { identifier: name.value } : {})
}

export const Envelope = <A, I, R>(data: Schema.Schema<A, I, R>) =>
  Schema.transform(Schema.Struct({ success: Schema.Literal(true), data }), unwrapped(data), {
    strict: true,
    decode: (envelope) => envelope.data,
    encode: (value) => ({ success: true as const, data: value })
  })
