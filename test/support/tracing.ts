/** A tracer that keeps every span in memory, to assert what a trace would show. */
import { Option, Tracer } from "effect"

export interface RecordedSpan {
  readonly name: string
  readonly parentName: string | undefined
  readonly attributes: Map<string, unknown>
  ended: boolean
}

export const recordingTracer = () => {
  const spans: Array<RecordedSpan> = []
  let counter = 0
  const tracer = Tracer.make({
    span(name, parent, context, links, startTime, kind) {
      const recorded: RecordedSpan = {
        name,
        parentName: Option.match(parent, {
          onNone: () => undefined,
          onSome: (span) => (span._tag === "Span" ? span.name : undefined)
        }),
        attributes: new Map(),
        ended: false
      }
      spans.push(recorded)
      let status: Tracer.SpanStatus = { _tag: "Started", startTime }
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: `span${++counter}`,
        traceId: "trace",
        parent,
        context,
        get status() {
          return status
        },
        attributes: recorded.attributes,
        links: [...links],
        sampled: true,
        kind,
        end(endTime, exit) {
          status = { _tag: "Ended", startTime, endTime, exit }
          recorded.ended = true
        },
        attribute(key, value) {
          recorded.attributes.set(key, value)
        },
        event() {},
        addLinks() {}
      }
      return span
    },
    context: (f) => f()
  })
  return { tracer, spans }
}
