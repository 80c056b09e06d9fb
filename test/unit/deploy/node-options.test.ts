/**
 * The image's Node options (the Dockerfile's `NODE_OPTIONS`, issue #17): accepted by Node, and they
 * cap the young generation that V8 otherwise grows to 32 MiB while a process boots and keeps at
 * rest (bench/README.md, "Footprint"). The churn below grows it as the api's and the worker's boot does.
 */
import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"

const root = join(import.meta.dirname, "..", "..", "..")
const imageNodeOptions = /^\s*NODE_OPTIONS="([^"]*)"/m.exec(readFileSync(join(root, "Dockerfile"), "utf8"))?.[1]

const churn = `
const { getHeapSpaceStatistics } = require("node:v8")
const window = []
for (let i = 0; i < 400000; i++) {
  window.push({ i, text: "item " + i, list: [i, i + 1, i + 2] })
  if (window.length > 50000) window.splice(0, 10000)
}
const space = getHeapSpaceStatistics().find((entry) => entry.space_name === "new_space")
console.log(space.space_size / 1048576)
`

const youngGenerationMiB = async (nodeOptions: string) => {
  const { stdout } = await promisify(execFile)(process.execPath, ["-e", churn], {
    env: { ...process.env, NODE_OPTIONS: nodeOptions }
  })
  return Number(stdout.trim())
}

describe("the image's Node options", () => {
  it("cap the young generation at 16 MiB, where V8 alone grows it to 32", async () => {
    expect(imageNodeOptions).toContain("--max-semi-space-size=8")
    expect(await youngGenerationMiB("")).toBeGreaterThan(16)
    expect(await youngGenerationMiB(imageNodeOptions ?? "")).toBeLessThanOrEqual(16)
  })
})
