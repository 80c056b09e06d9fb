/**
 * `node --import ./test/support/loaded-modules.ts <script>`: records every module the process
 * loads (import and require, through Node's synchronous module hooks) and writes them, one a
 * line, to the file named by LOADED_MODULES_FILE when the process exits: npm packages by name
 * (`sharp`, `@aws-sdk/client-s3`) and each of their files by its path in the package
 * (`@prisma/client/runtime/client.js`), the project's own files by path (`src/worker.ts`).
 */
import { writeFileSync } from "node:fs"
import { registerHooks } from "node:module"
import { join, relative } from "node:path"
import { fileURLToPath } from "node:url"

const root = join(import.meta.dirname, "..", "..")
const file = process.env["LOADED_MODULES_FILE"]
const loaded = new Set<string>()

/** What a module is recorded as: its package and its file in the package, or its path in the project. */
const namesOf = (url: string): ReadonlyArray<string> => {
  if (!url.startsWith("file:")) return []
  const path = fileURLToPath(url).split("\\").join("/")
  const inPackage = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(path)
  if (inPackage?.[1] !== undefined) return [inPackage[1], `${inPackage[1]}/${inPackage[2] ?? ""}`]
  return [relative(root, path).split("\\").join("/")]
}

if (file !== undefined) {
  registerHooks({
    resolve: (specifier, context, nextResolve) => {
      const resolved = nextResolve(specifier, context)
      for (const name of namesOf(resolved.url)) loaded.add(name)
      return resolved
    }
  })
  process.once("exit", () => writeFileSync(file, [...loaded].sort().join("\n")))
}
