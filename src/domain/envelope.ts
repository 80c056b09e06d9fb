/**
 * The seed's success envelope `{ success: true, data }`. Handlers return the bare value; the
 * envelope exists only on the wire, so OpenAPI and typed clients see exactly what is sent.
 */
import { Schema } from "effect"

export const Envelope = <A, I, R>(data: Schema.Schema<A, I, R>) =>
  Schema.transform(Schema.Struct({ success: Schema.Literal(true), data }), Schema.typeSchema(data), {
    strict: true,
    decode: (envelope) => envelope.data,
    encode: (value) => ({ success: true as const, data: value })
  })
