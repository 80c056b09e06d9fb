/**
 * The environment of an api or worker a test starts as a child process: the test database and
 * Redis, a queue prefix of its own, local storage in `dataDir` (shared by the processes given the
 * same one), the tests' token key, JSON logs. Callers add the port and their own settings.
 */
import { randomBytes } from "node:crypto"
import { TEST_AUTHORIZED_PARTY, testKeys } from "./auth.ts"
import { testDatabaseUrl } from "./database.ts"

export const childAppEnv = (dataDir: string, queuePrefix = "wm-test"): Record<string, string> => ({
  // api.ts and worker.ts are production unless told otherwise.
  NODE_ENV: "test",
  DATABASE_URL: testDatabaseUrl(),
  REDIS_URL: process.env["TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379",
  QUEUE_PREFIX: `${queuePrefix}-${randomBytes(4).toString("hex")}`,
  DATA_DIR: dataDir,
  UPLOAD_SIGNING_SECRET: randomBytes(32).toString("hex"),
  CLERK_JWT_KEY: testKeys.publicKeyPem,
  CLERK_AUTHORIZED_PARTIES: TEST_AUTHORIZED_PARTY,
  LOG_FORMAT: "json"
})
