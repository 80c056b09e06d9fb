/**
 * After `prisma generate`: the generated client loads its query compiler (WebAssembly) by importing
 * a module whose one export is the binary as a base64 string, 4.4 MiB. An imported module stays
 * loaded, so its source and that string stayed in every process's heap for its whole life: 8.8 MiB
 * of the api's and the worker's idle RSS for bytes used once (issue #17). The rewritten loader
 * reads the same file, decodes it into the WebAssembly module and keeps neither string.
 */
import { readFileSync, writeFileSync } from "node:fs"

const IMPORTED =
  /const \{ wasm \} = await import\("(@prisma\/client\/runtime\/query_compiler_\w+\.\w+\.wasm-base64\.mjs)"\)\n(\s*)return await decodeBase64AsWasm\(wasm\)/

/** The loader that reads the module's file instead of importing it (`file` is its specifier). */
const readLoader = (specifier: string, indent: string) =>
  [
    `// Read, not imported: an imported module (its source and its string) would stay in the heap (scripts/prisma-compiler.ts).`,
    `const { readFile } = await import("node:fs/promises")`,
    `const { createRequire } = await import("node:module")`,
    `const source = await readFile(createRequire(import.meta.url).resolve(${JSON.stringify(specifier)}), "latin1")`,
    `return await decodeBase64AsWasm(source.slice(source.indexOf('"') + 1, source.lastIndexOf('"')))`
  ].join(`\n${indent}`)

/** Rewrites the compiler's loader in `source` (the generated `internal/class.ts`); undefined when it has no such import. */
export const withCompilerRead = (source: string): string | undefined => {
  const match = IMPORTED.exec(source)
  if (match === null) return undefined
  return source.replace(IMPORTED, readLoader(match[1] ?? "", match[2] ?? ""))
}

/** Rewrites the generated client's `internal/class.ts` in place; fails when Prisma's generated code no longer matches. */
export const patchCompilerLoader = (classFile: string): void => {
  const source = readFileSync(classFile, "utf8")
  if (source.includes("scripts/prisma-compiler.ts")) return
  const patched = withCompilerRead(source)
  if (patched === undefined) {
    throw new Error(
      `${classFile}: Prisma's query compiler is no longer imported as expected; update scripts/prisma-compiler.ts`
    )
  }
  writeFileSync(classFile, patched)
}
