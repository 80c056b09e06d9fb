/**
 * How a streamed operation documents its `text/event-stream` answer in OpenAPI, beside (never
 * inside) its JSON one: the stream as an array of events, each `{id, event, data}` with its
 * event name and its data's JSON Schema (named schemas referenced from the components); the
 * `Last-Event-ID` header; the 204 a reconnect past the end gets.
 */
import { JSONSchema, type Schema } from "effect"

export interface SseEventDoc {
  readonly event: string
  readonly description: string
  readonly data: Schema.Schema.AnyNoContext
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

const dataSchema = (schema: Schema.Schema.AnyNoContext) =>
  JSONSchema.fromAST(schema.ast, {
    definitions: {},
    definitionPath: "#/components/schemas/",
    target: "openApi3.1",
    topLevelReferenceStrategy: "keep"
  })

/** The stream's schema: an array of the events, one object schema per event name. */
export const eventStreamSchema = (description: string, events: ReadonlyArray<SseEventDoc>) => ({
  type: "array",
  description,
  items: {
    oneOf: events.map((event) => ({
      type: "object",
      description: event.description,
      required: ["id", "event", "data"],
      properties: {
        id: { type: "string", description: "The `id:` line: send it back as `Last-Event-ID` when reconnecting" },
        event: { type: "string", enum: [event.event] },
        data: dataSchema(event.data)
      },
      additionalProperties: false
    }))
  }
})

const LAST_EVENT_ID = (description: string) => ({
  name: "Last-Event-ID",
  in: "header",
  required: false,
  description,
  schema: { type: "string" }
})

/**
 * Documents the operation's `text/event-stream` 200 (next to the JSON one, if any), the
 * `Last-Event-ID` header and the 204 that tells an EventSource to stop.
 */
export const withEventStream =
  (options: {
    readonly description: string
    readonly events: ReadonlyArray<SseEventDoc>
    readonly lastEventId: string
    readonly ended: string
  }) =>
  (operation: Record<string, unknown>): Record<string, unknown> => {
    const responses = isRecord(operation["responses"]) ? operation["responses"] : {}
    const ok = isRecord(responses["200"]) ? responses["200"] : {}
    const content = isRecord(ok["content"]) ? ok["content"] : {}
    const parameters = Array.isArray(operation["parameters"]) ? operation["parameters"] : []
    return {
      ...operation,
      parameters: [...parameters, LAST_EVENT_ID(options.lastEventId)],
      responses: {
        ...responses,
        "200": {
          ...ok,
          content: {
            ...content,
            "text/event-stream": { schema: eventStreamSchema(options.description, options.events) }
          }
        },
        "204": { description: options.ended }
      }
    }
  }
