/** The in-memory progress bus passes the shared behaviour suite (one instance plays both roles). */
import { Effect } from "effect"
import { ProgressBus } from "../../../../src/core/progress/progress-bus.ts"
import { buildBus, progressBusSuite } from "./suite.ts"

progressBusSuite("ProgressBus.inMemory", (options) =>
  Effect.map(buildBus(ProgressBus.inMemory(options)), (bus) => ({ publisher: bus, subscriber: bus }))
)
