/**
 * The compose files as an operator runs them, without Docker: each service's environment as
 * compose would give it (nothing exported for the local stack; the production file's required
 * values), passed to the real entry points' `--check-config`. Plus what the files promise an
 * operator: Redis as BullMQ asks, a worker health check that hits a port the worker serves.
 */
import { spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { parse } from "yaml"
import { ComposeInterpolationError, composeCommand, composeEnvironment } from "../support/compose.ts"

const root = join(import.meta.dirname, "..", "..")
const LOCAL = ["docker-compose.yml"]
const PRODUCTION = ["docker-compose.yml", "docker-compose.production.yml"]

/** Exactly the compose environment (and a PATH), as in the container. */
const checkConfig = (command: ReadonlyArray<string>, env: Record<string, string>) =>
  new Promise<{ code: number | null; output: string }>((resolve) => {
    const [, ...args] = command
    const child = spawn(process.execPath, [...args, "--check-config"], {
      cwd: root,
      env: { PATH: process.env["PATH"] ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.on("exit", (code) => resolve({ code, output }))
  })

const productionValues = {
  CLERK_JWT_KEY: "-----BEGIN PUBLIC KEY-----\\nplaceholder\\n-----END PUBLIC KEY-----",
  CLERK_WEBHOOK_SIGNING_SECRET: "whsec_cGxhY2Vob2xkZXI=",
  S3_BUCKET: "wingmate-uploads",
  PUBLIC_BASE_URL: "https://api.wingmate.example",
  GEMINI_API_KEY: "placeholder"
}

describe("docker-compose.yml", () => {
  it("nothing exported: the api's and the worker's environments pass --check-config (explicit development mode)", async () => {
    for (const service of ["api", "worker"]) {
      const env = composeEnvironment(LOCAL, service)
      expect(env["NODE_ENV"]).toBe("development")
      expect(env["REDIS_URL"]).toBe("redis://cache:6379")
      const result = await checkConfig(composeCommand(LOCAL[0]!, service), env)
      expect(result).toEqual({ code: 0, output: `Configuration OK for the ${service}\n` })
    }
  }, 60_000)

  it("the production file: refused by compose until its required values are set, then --check-config passes", async () => {
    expect(() => composeEnvironment(PRODUCTION, "api")).toThrow(ComposeInterpolationError)
    for (const required of ["CLERK_JWT_KEY", "CLERK_WEBHOOK_SIGNING_SECRET", "S3_BUCKET", "PUBLIC_BASE_URL"] as const) {
      const { [required]: _, ...missing } = productionValues
      expect(() => composeEnvironment(PRODUCTION, "api", missing)).toThrow(new RegExp(`^${required}: set ${required}`))
    }
    for (const service of ["api", "worker"]) {
      const env = composeEnvironment(PRODUCTION, service, productionValues)
      expect(env["NODE_ENV"]).toBe("production")
      const result = await checkConfig(composeCommand(LOCAL[0]!, service), env)
      expect(result).toEqual({ code: 0, output: `Configuration OK for the ${service}\n` })
    }
    // The processes themselves refuse what compose cannot express: no AI provider key at all.
    const { GEMINI_API_KEY: _, ...withoutAi } = productionValues
    const refused = await checkConfig(
      composeCommand(LOCAL[0]!, "api"),
      composeEnvironment(PRODUCTION, "api", withoutAi)
    )
    expect(refused.code).toBe(1)
    expect(refused.output).toMatch(/^ {2}GEMINI_API_KEY: missing: Production needs at least one AI provider key/m)
  }, 60_000)

  it("Redis as BullMQ's production guide asks; a worker health check on the port the worker serves; a one-shot migration first", () => {
    const document = parse(readFileSync(join(root, "docker-compose.yml"), "utf8"), { merge: true }) as {
      services: Record<
        string,
        {
          command?: ReadonlyArray<string>
          healthcheck?: { test: ReadonlyArray<string> }
          depends_on?: Record<string, { condition: string }>
          restart?: string
        }
      >
    }
    const cache = document.services["cache"]!.command!.join(" ")
    expect(cache).toMatch(/--maxmemory-policy noeviction/)
    expect(cache).toMatch(/--appendonly yes/)
    const worker = document.services["worker"]!
    const port = composeEnvironment(LOCAL, "worker")["WORKER_HEALTH_PORT"]
    expect(port).toMatch(/^\d+$/)
    expect(worker.healthcheck!.test.join(" ")).toContain(`127.0.0.1:${port}/health/live`)
    expect(composeCommand(LOCAL[0]!, "migrate")).toEqual(["node", "scripts/db.ts", "deploy"])
    for (const service of ["api", "worker"]) {
      expect(document.services[service]!.depends_on?.["migrate"]).toEqual({
        condition: "service_completed_successfully"
      })
    }
  })
})
