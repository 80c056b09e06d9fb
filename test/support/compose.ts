/**
 * A service's environment as `docker compose` would give it, without Docker (no daemon here):
 * the compose files read in order (YAML anchors and `<<` merges resolved, later files' keys over
 * earlier ones), then `${VAR}`, `${VAR:-default}` and `${VAR:?message}` interpolated from what the
 * caller says is exported. The subset of compose these files use, and a refusal of the rest.
 */
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { parse } from "yaml"

const root = join(import.meta.dirname, "..", "..")

type Environment = Record<string, string>

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

export class ComposeInterpolationError extends Error {}

const interpolate = (value: string, exported: Environment): string =>
  value.replace(/\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}|\$\$/g, (whole, name?: string, kind?: string, rest = "") => {
    if (whole === "$$") return "$"
    const set = name === undefined ? undefined : exported[name]
    const present = set !== undefined && set !== ""
    if (kind === "-") return present ? set : rest
    if (kind === "?") {
      if (!present) throw new ComposeInterpolationError(`${name}: ${rest}`)
      return set
    }
    return set ?? ""
  })

/** `services.<service>.environment` of each file in turn, as the container would see it. */
export const composeEnvironment = (
  files: ReadonlyArray<string>,
  service: string,
  exported: Environment = {}
): Environment => {
  const merged: Record<string, unknown> = {}
  for (const file of files) {
    const document: unknown = parse(readFileSync(join(root, file), "utf8"), { merge: true })
    const services = isRecord(document) ? document["services"] : undefined
    const definition = isRecord(services) ? services[service] : undefined
    const environment = isRecord(definition) ? definition["environment"] : undefined
    if (environment === undefined) continue
    if (!isRecord(environment))
      throw new Error(`${file}: ${service}.environment must be a mapping (the list form is not read here)`)
    Object.assign(merged, environment)
  }
  return Object.fromEntries(
    Object.entries(merged).map(([key, value]) => [
      key,
      interpolate(typeof value === "string" ? value : String(value ?? ""), exported)
    ])
  )
}

/** `services.<service>.command` of the first file that has one (the exec form). */
export const composeCommand = (file: string, service: string): ReadonlyArray<string> => {
  const document: unknown = parse(readFileSync(join(root, file), "utf8"), { merge: true })
  const services = isRecord(document) ? document["services"] : undefined
  const definition = isRecord(services) ? services[service] : undefined
  const command = isRecord(definition) ? definition["command"] : undefined
  if (!Array.isArray(command) || !command.every((part) => typeof part === "string")) {
    throw new Error(`${file}: ${service}.command must be an exec-form list of strings`)
  }
  return command
}
