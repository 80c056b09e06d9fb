/**
 * .github/workflows/ci.yml: valid for GitHub Actions (action-validator's bundled schema, offline),
 * and doing what .ci/run does. Every check is also run on a broken copy, which must fail it.
 */
import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "vitest"
import { parse, stringify } from "yaml"

const root = fileURLToPath(new URL("../../../", import.meta.url))
const workflowPath = path.join(root, ".github/workflows/ci.yml")
const workflowText = readFileSync(workflowPath, "utf8")
const ciRun = readFileSync(path.join(root, ".ci/run"), "utf8")
const validatorBin = path.join(root, "node_modules/.bin/action-validator")

const scratch = mkdtempSync(path.join(tmpdir(), "wingmate-ci-workflow-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

const validate = (file: string) => spawnSync(validatorBin, [file], { encoding: "utf8", timeout: 30_000 })

type Json = unknown
const at = (value: Json, ...keys: ReadonlyArray<string | number>): Json =>
  keys.reduce<Json>(
    (node, key) =>
      typeof node === "object" && node !== null ? (node as Record<string | number, Json>)[key] : undefined,
    value
  )
const list = (value: Json): ReadonlyArray<Json> => (Array.isArray(value) ? value : [])
const record = (value: Json): Readonly<Record<string, Json>> =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, Json>) : {}

/** `npm ci`, `npm test`, `npm run <script>`, `npx --no-install <bin>`: the commands a script runs, options dropped. */
const npmCommands = (script: string): ReadonlyArray<string> =>
  script
    .split("\n")
    .map((line) => /^\s*(npm (?:ci|test|run \S+)|npx --no-install \S+)/.exec(line)?.[1])
    .filter((command): command is string => command !== undefined)

/** What .ci/run exports for the tests (`export NAME=...`). */
const ciRunExports = [...ciRun.matchAll(/^export (TEST_[A-Z_]+)=/gm)].flatMap((match) =>
  match[1] === undefined ? [] : [match[1]]
)

/** Every problem of a parsed workflow, as readable lines; empty when it does what .ci/run does. */
const workflowProblems = (workflow: Json): ReadonlyArray<string> => {
  const problems: Array<string> = []
  if (JSON.stringify(at(workflow, "permissions")) !== JSON.stringify({ contents: "read" })) {
    problems.push("permissions must be exactly { contents: read }")
  }
  if (at(workflow, "concurrency", "cancel-in-progress") !== true) problems.push("concurrency must cancel in progress")
  const jobs = record(at(workflow, "jobs"))
  for (const [name, job] of Object.entries(jobs)) {
    if (typeof at(job, "timeout-minutes") !== "number") problems.push(`job ${name} has no timeout-minutes`)
  }

  const test = jobs["test"]
  const services = record(at(test, "services"))
  const service = (prefix: string) =>
    Object.values(services).find((s) => String(at(s, "image")).startsWith(prefix)) as Json | undefined
  for (const [label, prefix, port] of [
    ["PostgreSQL 16", "postgres:16", "5432:5432"],
    ["Redis 7", "redis:7", "6379:6379"]
  ] as const) {
    const found = service(prefix)
    if (found === undefined) problems.push(`no ${label} service container`)
    else {
      if (!String(at(found, "options")).includes("--health-cmd")) problems.push(`${label} has no health check`)
      if (!list(at(found, "ports")).includes(port)) problems.push(`${label} does not publish ${port}`)
    }
  }
  const nodes = list(at(test, "strategy", "matrix", "node")).map(String)
  if (!nodes.some((v) => /^22(\.|$)/.test(v))) problems.push("the matrix has no Node 22")
  if (!nodes.some((v) => /^24(\.|$)/.test(v))) problems.push("the matrix has no Node 24")
  const steps = list(at(test, "steps"))
  const setupNode = steps.find((step) => String(at(step, "uses")).startsWith("actions/setup-node@"))
  if (at(setupNode, "with", "node-version") !== "${{ matrix.node }}") {
    problems.push("actions/setup-node does not install the matrix's Node")
  }
  const env = record(at(test, "env"))
  for (const name of ciRunExports) {
    if (typeof env[name] !== "string") problems.push(`${name} (exported by .ci/run) is not set`)
  }
  if (!String(env["TEST_DATABASE_ADMIN_URL"]).includes("127.0.0.1:5432")) {
    problems.push("TEST_DATABASE_ADMIN_URL does not point at the PostgreSQL service")
  }
  if (!String(env["TEST_REDIS_URL"]).includes("127.0.0.1:6379")) {
    problems.push("TEST_REDIS_URL does not point at the Redis service")
  }
  const ran = steps.flatMap((step) => npmCommands(String(at(step, "run") ?? "")))
  for (const command of npmCommands(ciRun)) {
    if (!ran.includes(command)) problems.push(`.ci/run runs \`${command}\`, the workflow does not`)
  }

  const docker = Object.entries(jobs).find(([, job]) =>
    list(at(job, "steps")).some(
      (step) =>
        String(at(step, "uses")).startsWith("docker/build-push-action@") || /docker build/.test(String(at(step, "run")))
    )
  )
  if (docker === undefined) problems.push("no job builds the Docker image")
  else {
    const [name, job] = docker
    const condition = String(at(job, "if"))
    if (!condition.includes("push") || !condition.includes("refs/heads/main")) {
      problems.push(`job ${name} does not run only on pushes to main`)
    }
    const build = list(at(job, "steps")).find((step) =>
      String(at(step, "uses")).startsWith("docker/build-push-action@")
    )
    if (build !== undefined && at(build, "with", "push") !== false) problems.push(`job ${name} pushes the image`)
  }
  return problems
}

const workflow = parse(workflowText) as Json

const REMOVE = Symbol("remove")

/** A deep copy with the value at `keys` replaced (or removed). */
const mutated = (keys: ReadonlyArray<string | number>, replace: (old: Json) => Json | typeof REMOVE): Json => {
  const copy = structuredClone(workflow)
  const parent = at(copy, ...keys.slice(0, -1)) as Record<string | number, Json>
  const key = keys.at(-1) as string | number
  const next = replace(parent[key])
  if (next === REMOVE) delete parent[key]
  else parent[key] = next
  return copy
}

describe(".github/workflows/ci.yml", () => {
  it("is a valid workflow for action-validator", () => {
    const result = validate(workflowPath)
    expect(result.stdout + result.stderr).toBe("")
    expect(result.status).toBe(0)
  })

  it("a broken copy is refused by action-validator", () => {
    const broken = path.join(scratch, "broken.yml")
    // A misspelt key: runs-on becomes runs-onn.
    writeFileSync(
      broken,
      stringify(
        mutated(["jobs", "test"], (job) => {
          const { "runs-on": runsOn, ...rest } = record(job)
          return { ...rest, "runs-onn": runsOn }
        })
      )
    )
    const result = validate(broken)
    expect(result.status).not.toBe(0)
    expect(result.stdout + result.stderr).toContain("runs-onn")
  })

  it("finds the commands of .ci/run (the check reads something)", () => {
    expect(npmCommands(ciRun)).toEqual(
      expect.arrayContaining([
        "npm ci",
        "npm run typecheck",
        "npm run lint",
        "npm run format:check",
        "npm test",
        "npm run test:resilience",
        "npx --no-install action-validator"
      ])
    )
    expect(ciRunExports).toEqual(["TEST_DATABASE_ADMIN_URL", "TEST_REDIS_URL"])
  })

  it("does what .ci/run does, with least privilege, timeouts and cancellation", () => {
    expect(workflowProblems(workflow)).toEqual([])
  })

  it.each<[string, ReadonlyArray<string | number>, (old: Json) => Json | typeof REMOVE, string]>([
    ["no permissions", ["permissions"], () => REMOVE, "permissions must be exactly"],
    ["write permissions", ["permissions"], () => ({ contents: "write" }), "permissions must be exactly"],
    ["no cancellation", ["concurrency", "cancel-in-progress"], () => false, "concurrency must cancel"],
    ["no timeout", ["jobs", "test", "timeout-minutes"], () => REMOVE, "job test has no timeout"],
    ["Redis 6", ["jobs", "test", "services", "redis", "image"], () => "redis:6", "no Redis 7 service"],
    [
      "no health check",
      ["jobs", "test", "services", "postgres", "options"],
      () => "",
      "PostgreSQL 16 has no health check"
    ],
    ["no Node 24", ["jobs", "test", "strategy", "matrix", "node"], () => ["22"], "no Node 24"],
    [
      "a missing test env var",
      ["jobs", "test", "env", "TEST_REDIS_URL"],
      () => REMOVE,
      "TEST_REDIS_URL (exported by .ci/run) is not set"
    ],
    [
      "no resilience step",
      ["jobs", "test", "steps"],
      (steps) => list(steps).filter((step) => !String(at(step, "run")).includes("test:resilience")),
      "`npm run test:resilience`, the workflow does not"
    ],
    [
      "the image pushed",
      ["jobs", "docker", "steps"],
      (steps) =>
        list(steps).map((step) =>
          at(step, "with", "push") === false ? { ...record(step), with: { push: true } } : step
        ),
      "pushes the image"
    ],
    ["the image built on every event", ["jobs", "docker", "if"], () => REMOVE, "only on pushes to main"]
  ])("a copy with %s fails the check", (_, keys, replace, problem) => {
    expect(workflowProblems(mutated(keys, replace)).join("\n")).toContain(problem)
  })
})
