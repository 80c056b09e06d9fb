/**
 * Prisma's query compiler is read, not imported (scripts/prisma-compiler.ts, issue #17): a process
 * that has run a query through the generated client keeps no copy of the compiler's base64 source
 * in its heap (8.8 MiB of every process's idle RSS when it was an imported module).
 */
import { execFile } from "node:child_process"
import { join } from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"
import { withCompilerRead } from "../../../../scripts/prisma-compiler.ts"

const root = join(import.meta.dirname, "..", "..", "..", "..")

// A process that queries through the generated client (on in-memory PGlite), then lists the heap's
// strings of more than 1 MiB by their first characters.
const probe = `
import { getHeapSnapshot } from "node:v8"
import { PGlite } from "@electric-sql/pglite"
import { PrismaPGlite } from "pglite-prisma-adapter"
import { PrismaClient } from "./src/core/db/generated/client.ts"
const pglite = await PGlite.create("memory://")
const client = new PrismaClient({ adapter: new PrismaPGlite(pglite) })
const rows = await client.$queryRaw\`SELECT 41 + 1 AS answer\`
const chunks = []
for await (const chunk of getHeapSnapshot()) chunks.push(chunk)
const snapshot = JSON.parse(Buffer.concat(chunks).toString("utf8"))
const fields = snapshot.snapshot.meta.node_fields
const types = snapshot.snapshot.meta.node_types[0]
const large = []
for (let i = 0; i < snapshot.nodes.length; i += fields.length) {
  const type = types[snapshot.nodes[i + fields.indexOf("type")]]
  const size = snapshot.nodes[i + fields.indexOf("self_size")]
  if (type === "string" && size > 1024 * 1024) large.push(snapshot.strings[snapshot.nodes[i + fields.indexOf("name")]].slice(0, 24))
}
await client.$disconnect()
await pglite.close()
console.log(JSON.stringify({ answer: Number(rows[0].answer), large }))
`

describe("Prisma's query compiler", () => {
  it("is loaded and works, and no copy of its base64 source stays in the heap", async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", probe], {
      cwd: root,
      maxBuffer: 16 * 1024 * 1024
    })
    const result = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as { answer: number; large: Array<string> }
    expect(result.answer).toBe(42)
    // WebAssembly's magic number in base64 ("\0asm" → "AGFzbQ"), as the string or the module's source.
    expect(result.large.filter((head) => head.includes("AGFzbQ"))).toEqual([])
  })

  it("the generated loader's import is rewritten to a read of the same file", () => {
    const generated = [
      "  getQueryCompilerWasmModule: async () => {",
      '    const { wasm } = await import("@prisma/client/runtime/query_compiler_fast_bg.postgresql.wasm-base64.mjs")',
      "    return await decodeBase64AsWasm(wasm)",
      "  },"
    ].join("\n")
    const patched = withCompilerRead(generated) ?? ""
    expect(patched).not.toContain('await import("@prisma/client/runtime/query_compiler_fast_bg.postgresql.wasm-base64')
    expect(patched).toContain('resolve("@prisma/client/runtime/query_compiler_fast_bg.postgresql.wasm-base64.mjs")')
    expect(withCompilerRead("export {}")).toBeUndefined()
  })
})
