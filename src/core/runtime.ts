/**
 * Runs a process role until SIGTERM/SIGINT, after checking its whole configuration at once
 * (config-check.ts): a problem prints one line per variable and exits 1 without a stack trace;
 * other boot failures are logged and exit 1. With `--check-config` it only checks: every problem
 * on its own line (or one line saying it is fine), exit 0 or 1, nothing connected to.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, ConfigError, Data, Effect, Layer } from "effect"
import { describeConfigError } from "./config.ts"
import { configurationProblems, type ProcessRole, roleConfigProvider } from "./config-check.ts"

/** Boot refused: the problems are printed already. */
class ConfigurationRefused extends Data.TaggedError("ConfigurationRefused") {}

const printProblems = (problems: ReadonlyArray<ConfigError.ConfigError>) =>
  Effect.sync(() => {
    const lines = problems.flatMap(describeConfigError)
    process.stderr.write(`Invalid configuration:\n${lines.map((line) => `  ${line}\n`).join("")}`)
  })

const reportFailure = (cause: Cause.Cause<unknown>) => {
  if (Cause.isInterruptedOnly(cause)) return Effect.void
  if (Cause.failures(cause).pipe((failures) => [...failures].some((error) => error instanceof ConfigurationRefused))) {
    return Effect.void
  }
  const configErrors = Cause.failures(cause).pipe((failures) => [...failures].filter(ConfigError.isConfigError))
  if (configErrors.length > 0) return printProblems(configErrors)
  return Effect.logFatal("The process stopped on a failure", cause)
}

export const runMain = <E>(role: ProcessRole, process: Layer.Layer<never, E>) =>
  Effect.gen(function* () {
    const problems = yield* configurationProblems(role)
    if (problems.length > 0) {
      yield* printProblems(problems)
      return yield* Effect.fail(new ConfigurationRefused())
    }
    if (globalThis.process.argv.includes("--check-config")) {
      return yield* Effect.sync(() => globalThis.process.stdout.write(`Configuration OK for the ${role}\n`))
    }
    return yield* Layer.launch(process)
  }).pipe(
    Effect.withConfigProvider(roleConfigProvider(role)),
    Effect.tapErrorCause(reportFailure),
    NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
  )
