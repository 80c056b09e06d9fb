/**
 * The image's Node options (the Dockerfile's `NODE_OPTIONS`): accepted by Node; they cap the young
 * generation that V8 otherwise grows to 32 MiB while a process boots and keeps at rest
 * (bench/README.md, "Footprint"; issue #17; the churn below grows it as the api's and the worker's
 * boot does), and the old generation at a size every pod that runs the image has room for, twice
 * over (V8 sizes its heap from the cap: without one, on a big host, the api's RSS grew by half under
 * the soak for the same live heap; issue #20).
 */
import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"
import { isObject, render, type Json } from "./kustomize.ts"

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

const MiB = 1024 * 1024
const maxOldSpaceMiB = Number(/--max-old-space-size=(\d+)/.exec(imageNodeOptions ?? "")?.[1])

/** Kubernetes memory quantities as the manifests write them (`768Mi`, `1Gi`), in MiB. */
const quantityMiB = (quantity: string): number => {
  const match = /^(\d+)(Mi|Gi)$/.exec(quantity)
  if (match === null) throw new Error(`unexpected memory quantity ${quantity}`)
  return Number(match[1]) * (match[2] === "Gi" ? 1024 : 1)
}

const field = (value: Json | undefined, ...path: ReadonlyArray<string>): Json | undefined =>
  path.reduce<Json | undefined>((at, key) => (isObject(at) ? at[key] : undefined), value)

/** Every long-running container of the rendered manifests: its name, memory limit and NODE_OPTIONS override. */
const deployedContainers = (overlay: string) =>
  render(join(root, "deploy", "kubernetes", overlay))
    .filter((object) => object.kind === "Deployment")
    .flatMap((object) => {
      const containers = field(object, "spec", "template", "spec", "containers")
      return Array.isArray(containers) ? containers : []
    })
    .map((container) => {
      const env = field(container, "env")
      const limit = field(container, "resources", "limits", "memory")
      return {
        name: String(field(container, "name")),
        limitMiB: typeof limit === "string" ? quantityMiB(limit) : Number.NaN,
        overridesNodeOptions: Array.isArray(env) && env.some((entry) => field(entry, "name") === "NODE_OPTIONS")
      }
    })

describe("the image's old generation cap", () => {
  it("bounds V8's heap where a big host would give it gigabytes", async () => {
    const heapLimitMiB = async (nodeOptions: string) => {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ["-e", "console.log(require('node:v8').getHeapStatistics().heap_size_limit)"],
        { env: { ...process.env, NODE_OPTIONS: nodeOptions } }
      )
      return Number(stdout.trim()) / MiB
    }
    expect(maxOldSpaceMiB).toBeGreaterThan(0)
    const capped = await heapLimitMiB(imageNodeOptions ?? "")
    expect(capped).toBeGreaterThanOrEqual(maxOldSpaceMiB)
    // The old generation's cap plus the young generation's spaces.
    expect(capped).toBeLessThanOrEqual(maxOldSpaceMiB + 48)
  })

  it.each(["base", "overlays/production"])("leaves half of every %s pod's memory limit to the rest", (overlay) => {
    const containers = deployedContainers(overlay)
    expect(containers.map((container) => container.name).sort()).toEqual(["api", "worker"])
    for (const container of containers) {
      expect(container.overridesNodeOptions, container.name).toBe(false)
      expect(container.limitMiB, container.name).toBeGreaterThanOrEqual(2 * maxOldSpaceMiB)
    }
  })
})
