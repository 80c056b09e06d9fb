/**
 * The developer hooks, in throwaway git repositories under the system's temp folder (never this
 * checkout): `npm run prepare` installs them, the pre-commit hook fixes and formats staged files
 * and stops a commit on a lint error, the pre-push hook runs the typecheck then the unit tests;
 * `prepare` exits 0 without installing anything in CI, without husky, and outside a git checkout.
 * Commands run asynchronously: a synchronous one (a commit running ESLint, on a loaded machine)
 * would block this test worker past vitest's 60 s reporting deadline.
 */
import { spawn, type SpawnOptions } from "node:child_process"
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const root = fileURLToPath(new URL("../../../", import.meta.url))
const scratch = mkdtempSync(path.join(tmpdir(), "wingmate-hooks-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/** The files the hooks and `prepare` use, copied; node_modules linked (or left out). */
const FILES = [
  "package.json",
  ".gitignore",
  ".prettierrc.json",
  ".prettierignore",
  "eslint.config.js",
  ".husky/pre-commit",
  ".husky/pre-push",
  "scripts/prepare-hooks.ts",
  "scripts/check-node.cjs"
]

/** The environment of a developer's shell: no CI flag, no husky switch, no git state of an outer hook. */
const developerEnv = (extra: Readonly<Record<string, string>> = {}): NodeJS.ProcessEnv => {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => name !== "CI" && name !== "HUSKY" && !name.startsWith("GIT_"))
  )
  return {
    ...env,
    HOME: path.join(scratch, "home"),
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_AUTHOR_NAME: "Test",
    GIT_AUTHOR_EMAIL: "test@example.invalid",
    GIT_COMMITTER_NAME: "Test",
    GIT_COMMITTER_EMAIL: "test@example.invalid",
    ...extra
  }
}

const run = (cwd: string, command: string, args: ReadonlyArray<string>, options: SpawnOptions = {}) =>
  new Promise<{ readonly status: number | null; readonly output: string }>((resolve, reject) => {
    const child = spawn(command, args, { cwd, timeout: 90_000, env: developerEnv(), ...options })
    let stdout = ""
    let stderr = ""
    child.stdout?.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.once("error", reject)
    child.once("close", (status) => resolve({ status, output: `${stdout}${stderr}` }))
  })

const git = (cwd: string, ...args: ReadonlyArray<string>) => run(cwd, "git", args)

let copies = 0
/** A copy of the project's hook files in a new folder; a git repository with one commit unless `gitInit` is false. */
const project = async (options: { readonly nodeModules: boolean; readonly gitInit: boolean }) => {
  const dir = path.join(scratch, `project-${(copies += 1)}`)
  for (const file of FILES) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true })
    cpSync(path.join(root, file), path.join(dir, file))
  }
  if (options.nodeModules) symlinkSync(path.join(root, "node_modules"), path.join(dir, "node_modules"), "dir")
  if (options.gitInit) {
    await git(dir, "init", "-q", "-b", "main")
    await git(dir, "add", "-A")
    expect((await git(dir, "commit", "-q", "-m", "initial")).status).toBe(0)
  }
  return dir
}

const prepare = (dir: string, env: Readonly<Record<string, string>> = {}) =>
  run(dir, "npm", ["run", "prepare"], { env: developerEnv(env) })

mkdirSync(path.join(scratch, "home"), { recursive: true })

describe("git hooks", () => {
  let repo = ""
  beforeAll(async () => {
    repo = await project({ nodeModules: true, gitInit: true })
  })

  it("npm run prepare installs them (core.hooksPath → .husky/_)", async () => {
    const result = await prepare(repo)
    expect(result.output).toContain("git hooks installed")
    expect(result.status).toBe(0)
    expect((await git(repo, "config", "core.hooksPath")).output.trim()).toBe(".husky/_")
    expect(existsSync(path.join(repo, ".husky/_/pre-commit"))).toBe(true)
  })

  it("pre-commit: staged files are fixed by ESLint and formatted by Prettier", async () => {
    mkdirSync(path.join(repo, "src"), { recursive: true })
    // consistent-type-imports (fixable by ESLint) and spacing and semicolons (Prettier).
    writeFileSync(
      path.join(repo, "src/ok.ts"),
      'import { Buffer } from "node:buffer";\nexport const size   =   (b: Buffer): number => b.length;\n'
    )
    await git(repo, "add", "src/ok.ts")
    const commit = await git(repo, "commit", "-q", "-m", "ok")
    expect(commit.status, commit.output).toBe(0)
    expect((await git(repo, "show", "HEAD:src/ok.ts")).output).toBe(
      'import { type Buffer } from "node:buffer"\nexport const size = (b: Buffer): number => b.length\n'
    )
  }, 120_000)

  it("pre-commit: a lint error that cannot be fixed stops the commit", async () => {
    writeFileSync(path.join(repo, "src/bad.ts"), 'console.log("debug")\n')
    await git(repo, "add", "src/bad.ts")
    const commit = await git(repo, "commit", "-q", "-m", "bad")
    expect(commit.status).not.toBe(0)
    expect(commit.output).toContain("no-console")
    expect((await git(repo, "log", "--format=%s", "-1")).output.trim()).toBe("ok")
    await git(repo, "reset", "-q", "HEAD", "src/bad.ts")
  }, 120_000)

  it("pre-push: typecheck, then the unit tests; a failure stops the push", async () => {
    // A stand-in npm that records its arguments and fails on the ones in FAIL_ON.
    const bin = path.join(scratch, "bin")
    mkdirSync(bin, { recursive: true })
    writeFileSync(path.join(bin, "npm"), '#!/bin/sh\necho "$*" >> "$NPM_LOG"\n[ "$*" != "$FAIL_ON" ]\n')
    chmodSync(path.join(bin, "npm"), 0o755)
    const remote = path.join(scratch, "remote.git")
    await run(scratch, "git", ["init", "-q", "--bare", remote])
    await git(repo, "remote", "add", "origin", remote)
    const push = (log: string, failOn: string) =>
      run(repo, "git", ["push", "-q", "origin", "HEAD:refs/heads/main"], {
        env: developerEnv({ PATH: `${bin}:${process.env["PATH"] ?? ""}`, NPM_LOG: log, FAIL_ON: failOn })
      })
    const failingLog = path.join(scratch, "npm-failing.log")
    expect((await push(failingLog, "run typecheck")).status).not.toBe(0)
    expect(readFileSync(failingLog, "utf8")).toBe("run typecheck\n")
    expect((await git(remote, "branch", "--list", "main")).output.trim()).toBe("")

    const log = path.join(scratch, "npm.log")
    const pushed = await push(log, "")
    expect(pushed.status, pushed.output).toBe(0)
    expect(readFileSync(log, "utf8")).toBe("run typecheck\nrun test:unit\n")
  }, 120_000)
})

describe("npm run prepare never fails an install", () => {
  it("in CI (CI=true): exits 0, installs nothing", async () => {
    const repo = await project({ nodeModules: true, gitInit: true })
    const result = await prepare(repo, { CI: "true" })
    expect(result.status).toBe(0)
    expect(result.output).toContain("prepare: CI, git hooks not installed")
    expect((await git(repo, "config", "core.hooksPath")).status).not.toBe(0)
  })

  it("without husky (npm ci --omit=dev): exits 0, installs nothing", async () => {
    const repo = await project({ nodeModules: false, gitInit: true })
    const result = await prepare(repo)
    expect(result.status).toBe(0)
    expect(result.output).toContain("husky is not installed")
    expect((await git(repo, "config", "core.hooksPath")).status).not.toBe(0)
  })

  it("outside a git checkout: exits 0", async () => {
    const dir = await project({ nodeModules: true, gitInit: false })
    const result = await prepare(dir)
    expect(result.status).toBe(0)
    expect(result.output).toContain(".git can't be found")
  })
})
