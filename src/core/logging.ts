/** The process logger: JSON lines in production, pretty in development, level from config. */
import { Effect, Layer, Logger } from "effect"
import { AppConfig } from "./config.ts"

export const LoggingLive = Layer.unwrapEffect(
  Effect.map(AppConfig, (config) =>
    Layer.merge(config.logFormat === "json" ? Logger.json : Logger.pretty, Logger.minimumLogLevel(config.logLevel))
  )
)
