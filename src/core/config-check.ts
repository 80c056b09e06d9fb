/**
 * The whole configuration a process role runs on, decoded at once: the app's settings, the AI
 * chain's, OCR's and the progress bus's, and what the role itself cannot run without. Boot and
 * `--check-config` both go through here, so the check answers exactly what boot would; nothing
 * here connects to anything.
 */
import { Config, ConfigError, ConfigProvider, Effect, Either, Option } from "effect"
import { AiConfig } from "./ai/config.ts"
import { AppConfig, nodeEnvConfig } from "./config.ts"
import { OcrConfig } from "./ocr/config.ts"
import { ProgressConfig } from "./progress/progress-bus.ts"

/** `dev` is both roles in one process on embedded defaults (`npm run dev`). */
export type ProcessRole = "api" | "worker" | "dev"

/**
 * `node src/main/api.ts` and `node src/main/worker.ts` are production unless NODE_ENV says
 * otherwise: a forgotten variable must never mean dev auth. `npm run dev` defaults to development.
 * The environment as a map with that one default under it (a provider fallback would also
 * replace an invalid NODE_ENV instead of reporting it); no setting is nested, so the map reads
 * exactly as the environment does.
 */
export const roleConfigProvider = (role: ProcessRole, env: NodeJS.ProcessEnv = process.env) =>
  ConfigProvider.fromMap(
    new Map(
      Object.entries({ NODE_ENV: role === "dev" ? "development" : "production", ...env }).flatMap(([key, value]) =>
        value === undefined ? [] : [[key, value] as const]
      )
    )
  )

/** What the role needs beyond each setting's own checks (read on their own: listed even when others fail). */
const roleProblems = (role: ProcessRole) =>
  Effect.gen(function* () {
    const production = (yield* Effect.option(nodeEnvConfig)).pipe(Option.exists((env) => env === "production"))
    const redisUrl = yield* Config.option(Config.string("REDIS_URL")).pipe(
      Effect.map(Option.filter((url) => url.trim() !== ""))
    )
    // Without Redis an api queues sessions that no worker process can see, and a worker has no queue.
    return production && role !== "dev" && Option.isNone(redisUrl)
      ? [
          ConfigError.MissingData(
            ["REDIS_URL"],
            `Required in production by the ${role} (the sessions queue and progress bus between api and worker processes)`
          )
        ]
      : []
  })

const problemsOf = <A, R>(effect: Effect.Effect<A, ConfigError.ConfigError, R>) =>
  Effect.map(Effect.either(effect), Either.match({ onLeft: (error) => [error], onRight: () => [] }))

/** Every configuration problem of `role`, all at once (empty: boot would accept it). */
export const configurationProblems = (role: ProcessRole) =>
  Effect.map(
    Effect.all([
      problemsOf(Effect.provide(AppConfig, AppConfig.Default)),
      Effect.orElseSucceed(roleProblems(role), () => []),
      problemsOf(Effect.provide(AiConfig, AiConfig.Default)),
      problemsOf(OcrConfig),
      problemsOf(ProgressConfig)
    ]),
    (all) => all.flat()
  )
