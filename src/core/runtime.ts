/**
 * Runs a process layer until SIGTERM/SIGINT. A configuration problem prints one line per
 * variable and exits 1 without a stack trace; other boot failures are logged and exit 1.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, ConfigError, Effect, Layer } from "effect"
import { describeConfigError } from "./config.ts"

const reportFailure = (cause: Cause.Cause<unknown>) => {
  if (Cause.isInterruptedOnly(cause)) return Effect.void
  const configErrors = Cause.failures(cause).pipe((failures) => [...failures].filter(ConfigError.isConfigError))
  if (configErrors.length > 0) {
    const lines = configErrors.flatMap(describeConfigError)
    return Effect.sync(() =>
      process.stderr.write(`Invalid configuration:\n${lines.map((line) => `  ${line}\n`).join("")}`)
    )
  }
  return Effect.logFatal("The process stopped on a failure", cause)
}

export const runMain = <E>(process: Layer.Layer<never, E>) =>
  Layer.launch(process).pipe(
    Effect.tapErrorCause(reportFailure),
    NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
  )
