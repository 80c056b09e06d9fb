/**
 * The image's Node options (the Dockerfile's `NODE_OPTIONS`): accepted by Node, and they cap the old
 * generation at a size every pod that runs the image has room for, twice over (V8 sizes its heap
 * from the cap: without one, on a big host, the api's RSS grew by half under the soak for the same
 * live heap; issue #20). The young generation is left at V8's default (capping it cost CPU per
 * request: bench/README.md, "Footprint").
 *
 * The api's own flags (the image's `CMD`): WebAssembly kept on V8's baseline compiler, the same
 * command wherever the api is started, and never the worker's (bench/README.md, "The api's
 * WebAssembly on Liftoff").
 */
import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"
import { composeCommand } from "../../support/compose.ts"
import { isObject, render, type Json } from "./kustomize.ts"

const root = join(import.meta.dirname, "..", "..", "..")
const dockerfile = readFileSync(join(root, "Dockerfile"), "utf8")
const imageNodeOptions = /^\s*NODE_OPTIONS="([^"]*)"/m.exec(dockerfile)?.[1]

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
        overridesNodeOptions: Array.isArray(env) && env.some((entry) => field(entry, "name") === "NODE_OPTIONS"),
        command: field(container, "command")
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

/** The image's default command (the api), exec form. */
const imageCommand = JSON.parse(/^CMD (\[.*\])$/m.exec(dockerfile)?.[1] ?? "[]") as ReadonlyArray<string>
const scripts = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> })
  .scripts
/** An npm script's command as exec form, without the Node version check every script starts with. */
const scriptCommand = (name: string) =>
  (scripts[name] ?? "").replace(/^node scripts\/check-node\.cjs && /, "").split(" ")

/** `%IsLiftoffFunction` of a hot WebAssembly function under `flags` (V8 tiers up at once and in line here). */
const staysOnLiftoff = async (flags: ReadonlyArray<string>) => {
  // (module (func (export "f") (param i32) (result i32) local.get 0 i32.const 1 i32.add))
  const module = [
    0, 97, 115, 109, 1, 0, 0, 0, 1, 6, 1, 96, 1, 127, 1, 127, 3, 2, 1, 0, 7, 5, 1, 1, 102, 0, 0, 10, 9, 1, 7, 0, 32, 0,
    65, 1, 106, 11
  ]
  const script = [
    `const bytes = new Uint8Array(${JSON.stringify(module)});`,
    "const f = new WebAssembly.Instance(new WebAssembly.Module(bytes)).exports.f;",
    "let n = 0; for (let i = 0; i < 1000; i++) n = f(n);",
    "console.log(n, %IsLiftoffFunction(f));"
  ].join("\n")
  const { stdout } = await promisify(execFile)(process.execPath, [
    ...flags,
    "--allow-natives-syntax",
    "--wasm-tiering-budget=1",
    "--wasm-sync-tier-up",
    "-e",
    script
  ])
  const [calls, liftoff] = stdout.trim().split(" ")
  expect(calls).toBe("1000")
  return liftoff === "true"
}

describe("the api's command", () => {
  const apiFlags = imageCommand.slice(1, -1)

  it("is the same wherever the api starts: the image, package.json's start, compose, Kubernetes", () => {
    expect(imageCommand[0]).toBe("node")
    expect(imageCommand.at(-1)).toBe("src/main/api.ts")
    expect(apiFlags).toContain("--liftoff-only")
    expect(scriptCommand("start")).toEqual(imageCommand)
    expect(composeCommand("docker-compose.yml", "api")).toEqual(imageCommand)
    for (const overlay of ["base", "overlays/production"]) {
      const api = deployedContainers(overlay).find((container) => container.name === "api")
      expect(api?.command, overlay).toEqual(imageCommand)
    }
  })

  it("is not the worker's: tesseract, its local OCR, needs the optimising tier", () => {
    const workerCommands = [
      scriptCommand("start:worker"),
      composeCommand("docker-compose.yml", "worker"),
      ...["base", "overlays/production"].map(
        (overlay) => deployedContainers(overlay).find((container) => container.name === "worker")?.command
      )
    ]
    for (const command of workerCommands) {
      expect(command).toEqual(["node", "src/main/worker.ts"])
    }
  })

  it("keeps a hot WebAssembly function on Liftoff, which V8 otherwise recompiles with TurboFan", async () => {
    expect(await staysOnLiftoff([])).toBe(false)
    expect(await staysOnLiftoff(apiFlags)).toBe(true)
  })
})
