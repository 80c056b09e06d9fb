/**
 * `npm run lint:openapi`: the document the server serves at `/openapi.json` (built here from the
 * same `WingmateApi`), written to a temporary file and linted by Redocly's `recommended` rules,
 * none turned off or downgraded. Any error or warning fails the run.
 *
 *   npm run lint:openapi            lint
 *   npm run lint:openapi -- --print print the document instead (for other tools)
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { openApiDocument } from "../src/domain/openapi.ts"

const document = JSON.stringify(openApiDocument(), null, 2)
if (process.argv.includes("--print")) {
  process.stdout.write(`${document}\n`)
  process.exit(0)
}

const dir = mkdtempSync(join(tmpdir(), "wingmate-openapi-"))
try {
  const file = join(dir, "openapi.json")
  const config = join(dir, "redocly.yaml")
  writeFileSync(file, document)
  // The recommended ruleset as it is: no rule listed here, so none is turned off or downgraded.
  writeFileSync(config, "extends:\n  - recommended\n")
  const run = spawnSync(
    "npx",
    ["--no-install", "redocly", "lint", file, "--config", config, "--format", "stylish", "--max-problems", "1000"],
    {
      stdio: ["ignore", "pipe", "pipe"],
      encoding: "utf8",
      // Offline and quiet: no usage telemetry, no update check.
      env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" }
    }
  )
  const output = `${run.stdout}${run.stderr}`
  process.stdout.write(output)
  // Redocly exits 0 with warnings: they fail here too.
  const warnings = /(\d+) warnings?/.exec(output)
  if (run.status !== 0) process.exit(run.status ?? 1)
  if (warnings !== null && Number(warnings[1]) > 0) {
    console.error(`lint:openapi: ${warnings[1]} warning(s); the document must be clean`)
    process.exit(1)
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
