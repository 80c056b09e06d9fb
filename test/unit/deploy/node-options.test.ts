/**
 * The image's Node options (the Dockerfile's `NODE_OPTIONS`): accepted by Node, and they cap the old
 * generation at a size every pod that runs the image has room for, twice over (V8 sizes its heap
 * from the cap: without one, on a big host, the api's RSS grew by half under the soak for the same
 * live heap; issue #20). The young generation is left at V8's default (capping it cost CPU per
 * request: bench/README.md, "Footprint").
 */
import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"
import { isObject, render, type Json } from "./kustomize.ts"

const root = join(import.meta.dirname, "..", "..", "..")
const imageNodeOptions = /^\s*NODE_OPTIONS="([^"]*)"/m.exec(readFileSync(join(root, "Dockerfile"), "utf8"))?.[1]

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
    // The old generation's cap plus the young generation's reservation (V8's default: 48 MiB on
    // Node 22, 192 on Node 24), far from the gigabytes V8 takes on its own on a big host.
    expect(capped).toBeLessThan(2 * maxOldSpaceMiB)
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
