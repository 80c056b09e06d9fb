/**
 * Each process loads only what it uses (issue #17): `src/main/api.ts` and `src/main/worker.ts`
 * started with production settings on the test database, their loaded modules recorded
 * (test/support/loaded-modules.ts) from boot to a clean SIGTERM. The api reads no screenshot (no
 * OCR engine, no sharp until an image comes) and no queue dashboard without ADMIN_TOKEN; the
 * worker serves no route; an AI SDK or the S3 client loads only when configured; neither loads
 * Prisma's query compiler (WebAssembly) before its first query through Prisma's client.
 */
import { randomBytes } from "node:crypto"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { TEST_AUTHORIZED_PARTY, testKeys } from "../../support/auth.ts"
import { testDatabaseUrl } from "../../support/database.ts"
import { cleanEnv, freePort, outputContains, start, waitForReady } from "../../support/processes.ts"

const prefix = `wm-test-${randomBytes(4).toString("hex")}`
const workDir = mkdtempSync(join(tmpdir(), "wingmate-loaded-modules-"))
afterAll(() => rmSync(workDir, { recursive: true, force: true }))

const SDKS = ["openai", "@anthropic-ai/sdk", "@google/genai", "@aws-sdk/client-s3", "@aws-sdk/s3-request-presigner"]

/** Prisma's client is loaded (the recording sees its files), its query compiler is not: readiness pings through the pool. */
const expectNoQueryCompiler = (loaded: ReadonlySet<string>) => {
  const prismaRuntime = [...loaded].filter((name) => name.startsWith("@prisma/client/runtime/"))
  expect(prismaRuntime.some((name) => name.startsWith("@prisma/client/runtime/client"))).toBe(true)
  expect(prismaRuntime.filter((name) => name.includes("query_compiler"))).toEqual([])
}

/** Runs `script` until ready, stops it with SIGTERM, and answers what it loaded. */
const loadedBy = async (script: string, name: string, overrides: Record<string, string> = {}) => {
  const port = await freePort()
  const file = join(workDir, `${name}.txt`)
  const running = start(
    script,
    cleanEnv({
      // As deployed (Redis for the queue and progress), local storage allowed for the test.
      NODE_ENV: "production",
      REDIS_URL: process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379",
      QUEUE_PREFIX: prefix,
      ALLOW_EMBEDDED_IN_PRODUCTION: "true",
      CLERK_WEBHOOK_SIGNING_SECRET: "whsec_dGVzdC13ZWJob29rLXNlY3JldC1ub3QtdXNlZA==",
      NODE_OPTIONS: `--import ${join(import.meta.dirname, "..", "..", "support", "loaded-modules.ts")}`,
      LOADED_MODULES_FILE: file,
      DATABASE_URL: testDatabaseUrl(),
      DATA_DIR: join(workDir, name),
      PORT: String(port),
      PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
      CLERK_JWT_KEY: testKeys.publicKeyPem,
      CLERK_AUTHORIZED_PARTIES: TEST_AUTHORIZED_PARTY,
      LOG_FORMAT: "json",
      ...overrides
    })
  )
  if (script.endsWith("api.ts")) await waitForReady(`http://127.0.0.1:${port}`, running)
  else await outputContains(running.child, running.output, "Sessions consumer")
  running.child.kill("SIGTERM")
  expect(await running.exited, running.output()).toBe(0)
  return new Set(readFileSync(file, "utf8").split("\n"))
}

describe("modules each process loads", () => {
  it("the api: no OCR engine, no sharp, no AI SDK or S3 client unconfigured, no worker, no dashboard", async () => {
    const loaded = await loadedBy("src/main/api.ts", "api")
    // The recording works: what the api does need is there.
    expect(loaded).toContain("effect")
    expect(loaded).toContain("@clerk/backend")
    expect(loaded).toContain("src/server.ts")
    for (const name of ["tesseract.js", "sharp", ...SDKS, "@bull-board/api", "express", "src/worker.ts"]) {
      expect(loaded, name).not.toContain(name)
    }
    // A package's index loads every module of it (@effect/platform's holds the docs bundles).
    expect(loaded).not.toContain("@effect/cluster")
    expectNoQueryCompiler(loaded)
  }, 90_000)

  it("the api with an OpenAI key loads that SDK only", async () => {
    const loaded = await loadedBy("src/main/api.ts", "api-openai", {
      OPENAI_API_KEY: "sk-test-not-used",
      OPENAI_BASE_URL: "http://127.0.0.1:9/v1"
    })
    expect(loaded).toContain("openai")
    for (const name of SDKS.filter((sdk) => sdk !== "openai")) expect(loaded, name).not.toContain(name)
  }, 90_000)

  it("the worker: no route, no token verification, no OCR engine or sharp before a screenshot", async () => {
    const loaded = await loadedBy("src/main/worker.ts", "worker")
    expect(loaded).toContain("src/worker.ts")
    expect(loaded).toContain("src/core/ocr/ocr.ts")
    for (const name of [
      "tesseract.js",
      "sharp",
      ...SDKS,
      "@clerk/backend",
      "src/server.ts",
      "src/domain/api.ts",
      "@effect/rpc"
    ]) {
      expect(loaded, name).not.toContain(name)
    }
    expectNoQueryCompiler(loaded)
  }, 90_000)
})
