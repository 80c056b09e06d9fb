/**
 * The typed clients are client-safe: src/client/*.ts and everything they import reach only
 * src/domain and src/client, and outside packages only `effect` and `@effect/*` (never Node
 * built-ins, Prisma or server code), so an app can bundle them.
 */
import { describe, expect, it } from "@effect/vitest"
import { readdir, readFile } from "node:fs/promises"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..")
const importsOf = (source: string) =>
  Array.from(source.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/gms), (match) => match[1] ?? "")

describe("typed clients", () => {
  it("import only src/domain, src/client, effect and @effect/* (transitively)", async () => {
    const clients = (await readdir(join(root, "src/client"))).map((file) => join(root, "src/client", file))
    expect(clients.map((file) => relative(root, file)).sort()).toEqual([
      "src/client/rest-client.ts",
      "src/client/rpc-client.ts"
    ])
    const seen = new Set<string>()
    const outside: Array<string> = []
    const queue = [...clients]
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      if (seen.has(file)) continue
      seen.add(file)
      for (const specifier of importsOf(await readFile(file, "utf8"))) {
        if (specifier.startsWith(".")) {
          const target = resolve(dirname(file), specifier)
          const where = relative(root, target)
          if (!where.startsWith("src/domain/") && !where.startsWith("src/client/"))
            outside.push(`${relative(root, file)} → ${where}`)
          else queue.push(target)
        } else if (!(specifier === "effect" || specifier.startsWith("effect/") || specifier.startsWith("@effect/"))) {
          outside.push(`${relative(root, file)} → ${specifier}`)
        } else if (specifier.startsWith("@effect/platform-node") || specifier.startsWith("@effect/opentelemetry")) {
          outside.push(`${relative(root, file)} → ${specifier}`)
        }
      }
    }
    expect(outside).toEqual([])
    expect(seen.size).toBeGreaterThan(5)
  })
})
