/**
 * A bounded load run: autocannon against one api process on an authenticated GET (token
 * verification, the user's lookup and a database read per request), rate limits off. A warm-up,
 * then three equal rounds (3000 requests each, 8 connections): no error, no timeout, no non-2xx answer, and the process's
 * resident memory (VmRSS) stops growing: a leak grows every round, while the heap's one-off expansions (seen once at
 * 68 MB on a busy machine) happen in one step, so the smaller of the two round-to-round growths stays under 50 MB.
 */
import autocannon from "autocannon"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { newUser, rssBytes, stack, type User } from "./support.ts"

const processes = stack({ RATE_LIMIT_ENABLED: "false", LOG_LEVEL: "Warn" })
let api = ""
let pid = 0
let alice: User

beforeAll(async () => {
  const started = await processes.api()
  api = started.url
  pid = started.process.child.pid ?? 0
  alice = await newUser(api, "load")
})

afterAll(() => processes.stop())

/** `amount` requests (equal work per round, whatever the machine's speed), bounded at 20 s. */
const round = (amount: number) =>
  autocannon({
    url: `${api}/api/v1/sessions?limit=10`,
    headers: alice.headers,
    connections: 8,
    amount,
    duration: 20,
    timeout: 10
  })

const MB = 1024 * 1024
const REQUESTS = 3_000

describe("resilience: a bounded load run", () => {
  it("no errors or non-2xx answers, and memory that stops growing over equal rounds", async () => {
    const warmup = await round(REQUESTS)
    const first = await round(REQUESTS)
    const afterFirst = rssBytes(pid)
    const second = await round(REQUESTS)
    const afterSecond = rssBytes(pid)
    const third = await round(REQUESTS)
    const afterThird = rssBytes(pid)

    for (const result of [warmup, first, second, third]) {
      expect(result["2xx"]).toBe(REQUESTS)
      expect({ errors: result.errors, timeouts: result.timeouts, non2xx: result.non2xx }).toEqual({
        errors: 0,
        timeouts: 0,
        non2xx: 0
      })
    }
    const growths = [afterSecond - afterFirst, afterThird - afterSecond].map((bytes) => bytes / MB)
    expect(Math.min(...growths), `growth per round (MB): ${growths.join(", ")}`).toBeLessThan(50)
  })
})
