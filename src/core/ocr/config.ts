/** The OCR service's configuration (OCR_*), read once when its layer is built. */
import { Config } from "effect"

const positive = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.validate({ message: "Expected a positive integer", validation: (n) => n > 0 }),
    Config.withDefault(fallback)
  )

export const OcrConfig = Config.all({
  /** The whole vision read (every provider of the chain included); then local OCR takes over. */
  visionTimeoutMs: positive("OCR_VISION_TIMEOUT_MS", 30_000),
  local: Config.all({
    workers: Config.integer("OCR_LOCAL_WORKERS").pipe(
      Config.validate({ message: "Expected 1 to 8 workers", validation: (n) => n >= 1 && n <= 8 }),
      Config.withDefault(1)
    ),
    timeoutMs: positive("OCR_LOCAL_TIMEOUT_MS", 20_000),
    idleMs: positive("OCR_LOCAL_IDLE_MS", 5 * 60_000)
  })
})
export type OcrConfig = Config.Config.Success<typeof OcrConfig>
