/**
 * The developer hooks, in throwaway git repositories under the system's temp folder (never this
 * checkout): `npm run prepare` installs them, the pre-commit hook fixes and formats staged files
 * and stops a commit on a lint error, the pre-push hook runs the typecheck then the unit tests;
 * `prepare` exits 0 without installing anything in CI, without husky, and outside a git checkout.
 */
import { spawnSync, type SpawnSyncOptions } from "node:child_process"
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
import { afterAll, describe, expect, it } from "vitest"

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

const run = (cwd: string, command: string, args: ReadonlyArray<string>, options: SpawnSyncOptions = {}) => {
  const result = spawnSync(command, args, { cwd, encoding: "utf8", timeout: 90_000, env: developerEnv(), ...options })
  return { status: result.status, output: `${String(result.stdout)}${String(result.stderr)}` }
}

const git = (cwd: string, ...args: ReadonlyArray<string>) => run(cwd, "git", args)

let copies = 0
/** A copy of the project's hook files in a new folder; a git repository with one commit unless `gitInit` is false. */
const project = (options: { readonly nodeModules: boolean; readonly gitInit: boolean }) => {
  const dir = path.join(scratch, `project-${(copies += 1)}`)
  for (const file of FILES) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true })
    cpSync(path.join(root, file), path.join(dir, file))
  }
  if (options.nodeModules) symlinkSync(path.join(root, "node_modules"), path.join(dir, "node_modules"), "dir")
  if (options.gitInit) {
    git(dir, "init", "-q", "-b", "main")
    git(dir, "add", "-A")
    expect(git(dir, "commit", "-q", "-m", "initial").status).toBe(0)
  }
  return dir
}

const prepare = (dir: string, env: Readonly<Record<string, string>> = {}) =>
  run(dir, "npm", ["run", "prepare"], { env: developerEnv(env) })

mkdirSync(path.join(scratch, "home"), { recursive: true })

describe("git hooks", () => {
  const repo = project({ nodeModules: true, gitInit: true })

  it("npm run prepare installs them (core.hooksPath → .husky/_)", () => {
    const result = prepare(repo)
    expect(result.output).toContain("git hooks installed")
    expect(result.status).toBe(0)
    expect(git(repo, "config", "core.hooksPath").output.trim()).toBe(".husky/_")
    expect(existsSync(path.join(repo, ".husky/_/pre-commit"))).toBe(true)
  })

  it("pre-commit: staged files are fixed by ESLint and formatted by Prettier", () => {
    mkdirSync(path.join(repo, "src"), { recursive: true })
    // consistent-type-imports (fixable by ESLint) and spacing and semicolons (Prettier).
    writeFileSync(
      path.join(repo, "src/ok.ts"),
      'import { Buffer } from "node:buffer";\nexport const size   =   (b: Buffer): number => b.length;\n'
    )
    git(repo, "add", "src/ok.ts")
    const commit = git(repo, "commit", "-q", "-m", "ok")
    expect(commit.status, commit.output).toBe(0)
    expect(git(repo, "show", "HEAD:src/ok.ts").output).toBe(
      'import { type Buffer } from "node:buffer"\nexport const size = (b: Buffer): number => b.length\n'
    )
  }, 60_000)

  it("pre-commit: a lint error that cannot be fixed stops the commit", () => {
    writeFileSync(path.join(repo, "src/bad.ts"), 'console.log("debug")\n')
    git(repo, "add", "src/bad.ts")
    const commit = git(repo, "commit", "-q", "-m", "bad")
    expect(commit.status).not.toBe(0)
    expect(commit.output).toContain("no-console")
    expect(git(repo, "log", "--format=%s", "-1").output.trim()).toBe("ok")
    git(repo, "reset", "-q", "HEAD", "src/bad.ts")
  }, 60_000)

  it("pre-push: typecheck, then the unit tests; a failure stops the push", () => {
    // A stand-in npm that records its arguments and fails on the ones in FAIL_ON.
    const bin = path.join(scratch, "bin")
    mkdirSync(bin, { recursive: true })
    writeFileSync(path.join(bin, "npm"), '#!/bin/sh\necho "$*" >> "$NPM_LOG"\n[ "$*" != "$FAIL_ON" ]\n')
    chmodSync(path.join(bin, "npm"), 0o755)
    const remote = path.join(scratch, "remote.git")
    run(scratch, "git", ["init", "-q", "--bare", remote])
    git(repo, "remote", "add", "origin", remote)
    const push = (log: string, failOn: string) =>
      run(repo, "git", ["push", "-q", "origin", "HEAD:refs/heads/main"], {
        env: developerEnv({ PATH: `${bin}:${process.env["PATH"] ?? ""}`, NPM_LOG: log, FAIL_ON: failOn })
      })
    const failingLog = path.join(scratch, "npm-failing.log")
    expect(push(failingLog, "run typecheck").status).not.toBe(0)
    expect(readFileSync(failingLog, "utf8")).toBe("run typecheck\n")
    expect(git(remote, "branch", "--list", "main").output.trim()).toBe("")

    const log = path.join(scratch, "npm.log")
    const pushed = push(log, "")
    expect(pushed.status, pushed.output).toBe(0)
    expect(readFileSync(log, "utf8")).toBe("run typecheck\nrun test:unit\n")
  }, 60_000)
})

describe("npm run prepare never fails an install", () => {
  it("in CI (CI=true): exits 0, installs nothing", () => {
    const repo = project({ nodeModules: true, gitInit: true })
    const result = prepare(repo, { CI: "true" })
    expect(result.status).toBe(0)
    expect(result.output).toContain("prepare: CI, git hooks not installed")
    expect(git(repo, "config", "core.hooksPath").status).not.toBe(0)
  })

  it("without husky (npm ci --omit=dev): exits 0, installs nothing", () => {
    const repo = project({ nodeModules: false, gitInit: true })
    const result = prepare(repo)
    expect(result.status).toBe(0)
    expect(result.output).toContain("husky is not installed")
    expect(git(repo, "config", "core.hooksPath").status).not.toBe(0)
  })

  it("outside a git checkout: exits 0", () => {
    const dir = project({ nodeModules: true, gitInit: false })
    const result = prepare(dir)
    expect(result.status).toBe(0)
    expect(result.output).toContain(".git can't be found")
  })
})
