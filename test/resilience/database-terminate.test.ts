/**
 * PostgreSQL connections of a running api process terminated (`pg_terminate_backend`) while
 * authenticated requests run: every answer in the window is a 200 or a 503 SERVICE_UNAVAILABLE
 * envelope (no 500, no request left without an answer within its bound), and afterwards the
 * same process serves again without a restart.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect } from "effect"
import { sql, testDatabaseUrl } from "../support/database.ts"
import { call, loop, newUser, sleep, stack, tally, type User } from "./support.ts"

// The api's connections carry this name, so only they are terminated (never the harness's).
const applicationName = `wm-res-terminate-${process.pid}`
const withName = (url: string) => {
  const parsed = new URL(url)
  parsed.searchParams.set("application_name", applicationName)
  return parsed.toString()
}

const processes = stack({ RATE_LIMIT_ENABLED: "false" })
let api = ""
let apiOutput = () => ""
let alice: User

beforeAll(async () => {
  const started = await processes.api({ DATABASE_URL: withName(testDatabaseUrl()), DATABASE_POOL_MAX: "4" })
  api = started.url
  apiOutput = started.process.output
  alice = await newUser(api, "terminate")
})

afterAll(() => processes.stop())

const terminate = () =>
  Effect.runPromise(
    sql<{ terminated: boolean }>(
      `SELECT pg_terminate_backend(pid) AS terminated FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1`,
      [applicationName]
    )
  )

/** The api's error log lines (at most 3), to show why a request failed. */
const errorLines = (output: string) =>
  output
    .split("\n")
    .filter((line) => line.includes('"logLevel":"ERROR"'))
    .slice(0, 3)
    .join("\n")

describe("resilience: PostgreSQL connections terminated under the api", () => {
  it("requests in the window answer 200 or a 503 envelope, then the service recovers without a restart", async () => {
    const load = loop(`${api}/api/v1/sessions`, { headers: alice.headers }, 4)
    await sleep(500)
    let terminated = 0
    for (let round = 0; round < 5; round++) {
      terminated += (await terminate()).filter((row) => row.terminated).length
      await sleep(300)
    }
    await sleep(500)
    const replies = await load.stop()
    expect(terminated).toBeGreaterThan(0)

    const unexpected = replies.filter(
      (reply) =>
        !(
          reply.status === 200 ||
          (reply.status === 503 &&
            typeof reply.body === "object" &&
            reply.body !== null &&
            (reply.body as { success?: unknown }).success === false &&
            (reply.body as { error?: { code?: unknown } }).error?.code === "SERVICE_UNAVAILABLE")
        )
    )
    expect(
      unexpected.map((reply) => `${reply.status} ${reply.error ?? reply.text}`),
      `${JSON.stringify(tally(replies))}\n${errorLines(apiOutput())}`
    ).toEqual([])

    // The same process (no restart) serves again: every request of a second round succeeds.
    const after = []
    for (let i = 0; i < 20; i++) after.push(await call(`${api}/api/v1/sessions`, { headers: alice.headers }))
    expect(tally(after)).toEqual({ "200": 20 })
    expect((await call(`${api}/health/ready`)).status).toBe(200)
  })
})
