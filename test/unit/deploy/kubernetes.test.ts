/**
 * deploy/kubernetes, offline: the base and the production overlay rendered (./kustomize.ts), every
 * object validated against the pinned Kubernetes and KEDA schemas (./kubernetes-schema.ts), then
 * checked against the app itself: the queue's Redis key, the health routes of the OpenAPI
 * document, the shutdown timings, the environment variables it reads, the npm scripts. Each
 * check is also run on a broken copy, which it must refuse.
 */
import { readdirSync, readFileSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { OpenApi } from "@effect/platform"
import { QueueKeys } from "bullmq"
import { ConfigProvider, Effect, Either } from "effect"
import { describe, expect, it } from "vitest"
import { AppConfig, describeConfigError, type AppConfigShape } from "../../../src/core/config.ts"
import { WingmateApi } from "../../../src/domain/api.ts"
import { SESSIONS_QUEUE } from "../../../src/modules/sessions/sessions.jobs.ts"
import { schemaProblems } from "./kubernetes-schema.ts"
import { isObject, readYamlDocuments, render, type Json, type JsonObject, type Manifest } from "./kustomize.ts"

const root = fileURLToPath(new URL("../../../", import.meta.url))
const deployDir = path.join(root, "deploy/kubernetes")
const base = render(path.join(deployDir, "base"))
const production = render(path.join(deployDir, "overlays/production"))
const secretTemplates = readYamlDocuments(path.join(deployDir, "secrets.example.yaml")) as ReadonlyArray<Manifest>

// ---------------------------------------------------------------------------------------------
// What the app says about itself
// ---------------------------------------------------------------------------------------------

/** The npm scripts' commands, without the Node version check every script starts with (the image has the right Node). */
const scripts = Object.fromEntries(
  Object.entries(
    (JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts
  ).map(([name, command]) => [name, command.replace(/^node scripts\/check-node\.cjs && /, "")])
)

/** GET routes of the OpenAPI document the api serves. */
const openApiGets = Object.entries(OpenApi.fromApi(WingmateApi).paths)
  .filter(([, item]) => item.get !== undefined)
  .map(([route]) => route)

/** Names .env.example documents and some file under src/ reads as a quoted string. */
const appEnvNames: ReadonlySet<string> = (() => {
  const documented = [...readFileSync(path.join(root, ".env.example"), "utf8").matchAll(/^#? ?([A-Z][A-Z0-9_]+)=/gm)]
  const sources = readdirSync(path.join(root, "src"), { recursive: true, encoding: "utf8" })
    .filter((file) => file.endsWith(".ts") && !file.includes("generated"))
    .map((file) => readFileSync(path.join(root, "src", file), "utf8"))
    .join("\n")
  return new Set(documented.flatMap(([, name]) => (name !== undefined && sources.includes(`"${name}"`) ? [name] : [])))
})()

/** BullMQ's own name for the list of waiting jobs of the sessions queue. */
const waitListKey = (prefix: string) => new QueueKeys(prefix).toKey(SESSIONS_QUEUE, "wait")

/** The app's configuration as it would decode `env` at boot, or its problems. */
const decodeConfig = (env: Readonly<Record<string, string>>): Either.Either<AppConfigShape, ReadonlyArray<string>> =>
  Effect.runSync(
    AppConfig.pipe(
      Effect.provide(AppConfig.Default),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))),
      Effect.either,
      Effect.map(Either.mapLeft(describeConfigError))
    )
  )

// ---------------------------------------------------------------------------------------------
// Reading manifests
// ---------------------------------------------------------------------------------------------

const at = (value: Json | undefined, ...keys: ReadonlyArray<string | number>): Json | undefined =>
  keys.reduce<Json | undefined>(
    (node, key) =>
      Array.isArray(node) && typeof key === "number"
        ? (node as ReadonlyArray<Json>)[key]
        : isObject(node) && typeof key === "string"
          ? node[key]
          : undefined,
    value
  )
const list = (value: Json | undefined): ReadonlyArray<Json> => (Array.isArray(value) ? value : [])
const strings = (value: Json | undefined): Readonly<Record<string, string>> =>
  isObject(value)
    ? (Object.fromEntries(Object.entries(value).map(([k, v]) => [k, String(v)])) as Record<string, string>)
    : {}

const named = (objects: ReadonlyArray<Manifest>, kind: string, name: string) =>
  objects.find((object) => object.kind === kind && object.metadata["name"] === name)
const ofKind = (objects: ReadonlyArray<Manifest>, kind: string) => objects.filter((object) => object.kind === kind)
const podSpec = (workload: Manifest) => at(workload, "spec", "template", "spec")
const containersOf = (workload: Manifest) => list(at(podSpec(workload), "containers")).filter(isObject)
const nameOf = (object: Manifest) => `${object.kind} ${String(object.metadata["name"])}`

/** The Deployment whose container runs the package.json script `script` (`start`, `start:worker`). */
const runnerOf = (objects: ReadonlyArray<Manifest>, script: string) =>
  ofKind(objects, "Deployment").find((d) =>
    containersOf(d).some((c) => list(c["command"]).join(" ") === scripts[script])
  )

/** The environment a container gets: its ConfigMaps and Secrets (the templates' placeholders), then `env`. */
const environmentOf = (
  objects: ReadonlyArray<Manifest>,
  secrets: ReadonlyArray<Manifest>,
  container: JsonObject
): Record<string, string> => {
  const fromSources = list(container["envFrom"]).map((source) => {
    const configMap = at(source, "configMapRef", "name")
    const secret = at(source, "secretRef", "name")
    if (typeof configMap === "string") return strings(at(named(objects, "ConfigMap", configMap), "data"))
    if (typeof secret === "string") return strings(at(named(secrets, "Secret", secret), "stringData"))
    return {}
  })
  const direct = list(container["env"]).flatMap((entry) => {
    const name = at(entry, "name")
    const value = at(entry, "value")
    const secretKey = at(entry, "valueFrom", "secretKeyRef")
    if (typeof name !== "string") return []
    if (typeof value === "string") return [[name, value]]
    const secret = strings(at(named(secrets, "Secret", String(at(secretKey, "name"))), "stringData"))
    const fromSecret = secret[String(at(secretKey, "key"))]
    return fromSecret === undefined ? [] : [[name, fromSecret]]
  })
  return Object.assign({}, ...fromSources, Object.fromEntries(direct)) as Record<string, string>
}

const selectorMatches = (selector: Json | undefined, labels: Json | undefined) => {
  const wanted = strings(at(selector, "matchLabels"))
  const have = strings(labels)
  return Object.keys(wanted).length > 0 && Object.entries(wanted).every(([key, value]) => have[key] === value)
}

// ---------------------------------------------------------------------------------------------
// The checks: each returns readable problems, empty when all is well
// ---------------------------------------------------------------------------------------------

/** Schemas (types, required fields, enums, unknown fields) of every object and of the Secret templates. */
const validationProblems = (objects: ReadonlyArray<Manifest>, secrets: ReadonlyArray<Manifest>) => [
  ...objects.flatMap(schemaProblems),
  ...secrets.flatMap(schemaProblems)
]

/** Each workload's environment decodes as the app's configuration. */
const configFor = (objects: ReadonlyArray<Manifest>, secrets: ReadonlyArray<Manifest>, workload: Manifest) => {
  const [container] = containersOf(workload)
  return decodeConfig(container === undefined ? {} : environmentOf(objects, secrets, container))
}

/** Which objects select, target and reference which. */
const wiringProblems = (objects: ReadonlyArray<Manifest>) => {
  const problems: Array<string> = []
  const deployments = ofKind(objects, "Deployment")
  for (const deployment of deployments) {
    if (
      !selectorMatches(at(deployment, "spec", "selector"), at(deployment, "spec", "template", "metadata", "labels"))
    ) {
      problems.push(`${nameOf(deployment)}: its selector does not match its pod template`)
    }
  }
  const api = runnerOf(objects, "start")
  const worker = runnerOf(objects, "start:worker")
  if (api === undefined) problems.push(`no Deployment runs \`${scripts["start"]}\``)
  if (worker === undefined) problems.push(`no Deployment runs \`${scripts["start:worker"]}\``)
  const apiPods = at(api, "spec", "template", "metadata", "labels")
  for (const object of [...ofKind(objects, "Service"), ...ofKind(objects, "PodDisruptionBudget")]) {
    const selector =
      object.kind === "Service"
        ? { matchLabels: at(object, "spec", "selector") ?? null }
        : at(object, "spec", "selector")
    if (!selectorMatches(selector, apiPods)) problems.push(`${nameOf(object)}: does not select the api pods`)
  }
  for (const hpa of ofKind(objects, "HorizontalPodAutoscaler")) {
    const target = String(at(hpa, "spec", "scaleTargetRef", "name"))
    if (target !== api?.metadata["name"]) problems.push(`${nameOf(hpa)}: does not scale the api (${target})`)
  }
  const scaledObjects = ofKind(objects, "ScaledObject")
  if (scaledObjects.length !== 1) problems.push(`${scaledObjects.length} ScaledObjects, expected one (the worker)`)
  for (const scaled of scaledObjects) {
    if (at(scaled, "spec", "scaleTargetRef", "name") !== worker?.metadata["name"]) {
      problems.push(`${nameOf(scaled)}: does not scale the worker`)
    }
  }
  for (const deployment of deployments) {
    // An autoscaler owns the replica count: a fixed one would be reset by every apply.
    if (at(deployment, "spec", "replicas") !== undefined) problems.push(`${nameOf(deployment)}: sets replicas`)
  }
  return problems
}

/** The api's probes hit real routes, on the port the app listens on. */
const probeProblems = (objects: ReadonlyArray<Manifest>, secrets: ReadonlyArray<Manifest>) => {
  const api = runnerOf(objects, "start")
  const container = api === undefined ? undefined : containersOf(api)[0]
  if (api === undefined || container === undefined) return ["no api container"]
  const config = configFor(objects, secrets, api)
  if (Either.isLeft(config)) return [`the api's environment does not decode: ${config.left.join("; ")}`]
  const problems: Array<string> = []
  const expected = { livenessProbe: "/health/live", readinessProbe: "/health/ready", startupProbe: "/health/live" }
  for (const [probe, route] of Object.entries(expected)) {
    const get = at(container, probe, "httpGet")
    if (get === undefined && probe === "startupProbe") continue
    const routePath = String(at(get, "path"))
    if (!openApiGets.includes(routePath)) problems.push(`${probe} ${routePath} is not a GET route of the api`)
    else if (routePath !== route) problems.push(`${probe} is ${routePath}, expected ${route}`)
    const port = at(get, "port")
    const declared = list(container["ports"]).find((p) => at(p, "name") === port || at(p, "containerPort") === port)
    if (at(declared, "containerPort") !== config.right.port) {
      problems.push(`${probe} port ${String(port)} is not the app's PORT ${config.right.port}`)
    }
  }
  return problems
}

/** The worker's liveness probe asks the route the worker serves, on the port it serves it. */
const workerProbeProblems = (objects: ReadonlyArray<Manifest>, secrets: ReadonlyArray<Manifest>) => {
  const worker = runnerOf(objects, "start:worker")
  const container = worker === undefined ? undefined : containersOf(worker)[0]
  if (worker === undefined || container === undefined) return ["no worker container"]
  const config = configFor(objects, secrets, worker)
  if (Either.isLeft(config)) return [`the worker's environment does not decode: ${config.left.join("; ")}`]
  const get = at(container, "livenessProbe", "httpGet")
  if (get === undefined) return ["the worker's livenessProbe is not an httpGet"]
  const problems: Array<string> = []
  if (at(get, "path") !== "/health/live") problems.push(`the worker's livenessProbe is ${String(at(get, "path"))}`)
  const port = at(get, "port")
  const declared = list(container["ports"]).find((p) => at(p, "name") === port || at(p, "containerPort") === port)
  if (config.right.workerHealthPort === 0 || at(declared, "containerPort") !== config.right.workerHealthPort) {
    problems.push(`the worker's livenessProbe port is not its WORKER_HEALTH_PORT (${config.right.workerHealthPort})`)
  }
  return problems
}

/** SIGKILL comes after the app's own shutdown: the api's drain, the worker's grace. */
const shutdownProblems = (objects: ReadonlyArray<Manifest>, secrets: ReadonlyArray<Manifest>) => {
  const problems: Array<string> = []
  for (const [script, budget] of [
    ["start", (c: AppConfigShape) => ["SHUTDOWN_TIMEOUT_MS", c.shutdownTimeoutMs] as const],
    ["start:worker", (c: AppConfigShape) => ["QUEUE_SHUTDOWN_GRACE_MS", c.queue.shutdownGraceMs] as const]
  ] as const) {
    const workload = runnerOf(objects, script)
    if (workload === undefined) continue
    const config = configFor(objects, secrets, workload)
    if (Either.isLeft(config)) {
      problems.push(`${nameOf(workload)}: its environment does not decode: ${config.left.join("; ")}`)
      continue
    }
    const [variable, ms] = budget(config.right)
    const preStop = list(at(containersOf(workload)[0], "lifecycle", "preStop", "exec", "command"))
    const preStopMs = preStop[0] === "sleep" ? Number(preStop[1]) * 1000 : 0
    const grace = at(podSpec(workload), "terminationGracePeriodSeconds")
    if (typeof grace !== "number" || grace * 1000 <= preStopMs + ms) {
      problems.push(
        `${nameOf(workload)}: terminationGracePeriodSeconds ${String(grace)} does not exceed preStop ${preStopMs} ms + ${variable} ${ms} ms`
      )
    }
  }
  return problems
}

/** The worker's ScaledObject watches the list where BullMQ puts the sessions queue's waiting jobs. */
const kedaProblems = (objects: ReadonlyArray<Manifest>, secrets: ReadonlyArray<Manifest>) => {
  const worker = runnerOf(objects, "start:worker")
  const scaled = ofKind(objects, "ScaledObject")[0]
  if (worker === undefined || scaled === undefined) return ["no worker or no ScaledObject"]
  const config = configFor(objects, secrets, worker)
  if (Either.isLeft(config)) return [`the worker's environment does not decode: ${config.left.join("; ")}`]
  const problems: Array<string> = []
  const triggers = list(at(scaled, "spec", "triggers"))
  const redis = triggers.find((t) => at(t, "type") === "redis")
  if (redis === undefined) return ["the ScaledObject has no redis trigger"]
  const listName = at(redis, "metadata", "listName")
  const expected = waitListKey(config.right.queue.prefix)
  if (listName !== expected) problems.push(`listName ${String(listName)} is not the queue's wait list ${expected}`)
  if (!/^[1-9][0-9]*$/.test(String(at(redis, "metadata", "listLength")))) {
    problems.push("listLength is not a positive integer")
  }
  const min = at(scaled, "spec", "minReplicaCount")
  const max = at(scaled, "spec", "maxReplicaCount")
  if (typeof min !== "number" || min < 1) problems.push("minReplicaCount below 1: the first job would wait for a pod")
  if (typeof max !== "number" || typeof min !== "number" || max < min)
    problems.push("maxReplicaCount below minReplicaCount")
  const auth = named(objects, "TriggerAuthentication", String(at(redis, "authenticationRef", "name")))
  if (auth === undefined) problems.push("the redis trigger's TriggerAuthentication does not exist")
  const parameters = list(at(auth, "spec", "secretTargetRef")).map((ref) => String(at(ref, "parameter")))
  if (auth !== undefined && !parameters.includes("address") && at(redis, "metadata", "address") === undefined) {
    problems.push("the redis trigger has no address")
  }
  for (const ref of list(at(auth, "spec", "secretTargetRef"))) {
    const secret = named(secrets, "Secret", String(at(ref, "name")))
    if (at(secret, "stringData", String(at(ref, "key"))) === undefined) {
      problems.push(
        `TriggerAuthentication: ${String(at(ref, "name"))}/${String(at(ref, "key"))} is not in the Secret templates`
      )
    }
  }
  return problems
}

/** ConfigMap and Secret keys are variables the app reads; Secrets come from outside, templates hold no value. */
const environmentProblems = (objects: ReadonlyArray<Manifest>, secrets: ReadonlyArray<Manifest>) => {
  const problems: Array<string> = []
  const configKeys = ofKind(objects, "ConfigMap").flatMap((map) => Object.keys(strings(at(map, "data"))))
  for (const key of configKeys) {
    if (!appEnvNames.has(key)) problems.push(`ConfigMap key ${key} is not a variable the app reads`)
  }
  const appSecrets = named(secrets, "Secret", "wingmate-secrets")
  const secretKeys = Object.keys(strings(at(appSecrets, "stringData")))
  for (const key of secretKeys) {
    if (!appEnvNames.has(key)) problems.push(`Secret key ${key} is not a variable the app reads`)
    if (configKeys.includes(key)) problems.push(`${key} is both in the ConfigMap and in the Secret`)
  }
  for (const secret of secrets) {
    for (const [key, value] of Object.entries(strings(at(secret, "stringData")))) {
      if (!/<[^<>]+>/.test(value))
        problems.push(`Secret template ${nameOf(secret)} ${key} holds a value, not a <placeholder>`)
    }
    if (at(secret, "data") !== undefined) problems.push(`Secret template ${nameOf(secret)} has data (values)`)
  }
  for (const secret of ofKind(objects, "Secret")) {
    problems.push(`${nameOf(secret)} is rendered: applying would overwrite the real one`)
  }
  for (const workload of [...ofKind(objects, "Deployment"), ...ofKind(objects, "Job")]) {
    for (const container of containersOf(workload)) {
      const refs = [
        ...list(container["envFrom"]).map((s) => [at(s, "secretRef", "name"), undefined] as const),
        ...list(container["env"]).map(
          (e) => [at(e, "valueFrom", "secretKeyRef", "name"), at(e, "valueFrom", "secretKeyRef", "key")] as const
        )
      ]
      for (const [name, key] of refs) {
        if (name === undefined) continue
        const secret = named(secrets, "Secret", String(name))
        if (secret === undefined || (key !== undefined && at(secret, "stringData", String(key)) === undefined)) {
          problems.push(
            `${nameOf(workload)}: secret ${String(name)}${key === undefined ? "" : `/${String(key)}`} is not in the templates`
          )
        }
      }
      const config = decodeConfig(environmentOf(objects, secrets, container))
      if (Either.isLeft(config) && workload.kind === "Deployment") {
        problems.push(`${nameOf(workload)}: its environment does not decode: ${config.left.join("; ")}`)
      }
    }
  }
  return problems
}

/** Non-root, read-only, no privileges, bounded resources, and somewhere to write. */
const securityProblems = (objects: ReadonlyArray<Manifest>, secrets: ReadonlyArray<Manifest>) => {
  const problems: Array<string> = []
  for (const workload of [...ofKind(objects, "Deployment"), ...ofKind(objects, "Job")]) {
    const spec = podSpec(workload)
    const pod = at(spec, "securityContext")
    const where = nameOf(workload)
    if (at(spec, "automountServiceAccountToken") !== false) problems.push(`${where}: mounts a service account token`)
    if (at(pod, "runAsNonRoot") !== true) problems.push(`${where}: runAsNonRoot is not true`)
    if (at(pod, "runAsUser") !== 1000) problems.push(`${where}: does not run as uid 1000 (node)`)
    if (at(pod, "seccompProfile", "type") !== "RuntimeDefault") problems.push(`${where}: seccomp is not RuntimeDefault`)
    const emptyDirs = list(at(spec, "volumes"))
      .filter((v) => isObject(at(v, "emptyDir")))
      .map((v) => at(v, "name"))
    for (const container of containersOf(workload)) {
      const here = `${where} container ${String(container["name"])}`
      const context = container["securityContext"]
      if (at(context, "allowPrivilegeEscalation") !== false) problems.push(`${here}: allows privilege escalation`)
      if (at(context, "readOnlyRootFilesystem") !== true) problems.push(`${here}: root filesystem is writable`)
      if (!list(at(context, "capabilities", "drop")).includes("ALL")) problems.push(`${here}: keeps capabilities`)
      for (const kind of ["requests", "limits"]) {
        for (const resource of ["cpu", "memory"]) {
          if (at(container, "resources", kind, resource) === undefined) problems.push(`${here}: no ${resource} ${kind}`)
        }
      }
      const mounts = list(container["volumeMounts"])
      const writable = mounts.filter((m) => emptyDirs.includes(at(m, "name") ?? null)).map((m) => at(m, "mountPath"))
      const dataDir = environmentOf(objects, secrets, container)["DATA_DIR"]
      for (const folder of ["/tmp", ...(dataDir === undefined ? [] : [dataDir])]) {
        if (!writable.includes(folder)) problems.push(`${here}: ${folder} is not a writable emptyDir`)
      }
    }
  }
  return problems
}

/** The migration Job runs a script of package.json that applies migrations, with DATABASE_URL. */
const migrationProblems = (objects: ReadonlyArray<Manifest>, secrets: ReadonlyArray<Manifest>) => {
  const jobs = ofKind(objects, "Job")
  if (jobs.length !== 1) return [`${jobs.length} Jobs, expected the migration Job`]
  const [container] = containersOf(jobs[0] as Manifest)
  if (container === undefined) return ["the Job has no container"]
  const problems: Array<string> = []
  const command = list(container["command"]).map(String)
  const script = command[0] === "npm" && command[1] === "run" ? command[2] : undefined
  if (script === undefined || scripts[script] === undefined) {
    problems.push(`the Job runs \`${command.join(" ")}\`, not a package.json script`)
  } else if (script !== "db:migrate:deploy") problems.push(`the Job runs ${script}, not db:migrate:deploy`)
  if (environmentOf(objects, secrets, container)["DATABASE_URL"] === undefined)
    problems.push("the Job has no DATABASE_URL")
  if (at(podSpec(jobs[0] as Manifest), "restartPolicy") !== "Never") problems.push("the Job's pods restart in place")
  return problems
}

/** What a release needs on top: a namespace, a pinned image, room for drains. */
const releaseProblems = (objects: ReadonlyArray<Manifest>) => {
  const problems: Array<string> = []
  const namespaces = ofKind(objects, "Namespace")
  const namespace = namespaces[0]?.metadata["name"]
  if (namespaces.length !== 1) problems.push("no Namespace")
  if (at(namespaces[0], "metadata", "labels", "pod-security.kubernetes.io/enforce") !== "restricted") {
    problems.push("the Namespace does not enforce the restricted Pod Security Standard")
  }
  for (const object of objects) {
    if (object.kind !== "Namespace" && object.metadata["namespace"] !== namespace) {
      problems.push(`${nameOf(object)}: not in the namespace ${String(namespace)}`)
    }
  }
  for (const workload of [...ofKind(objects, "Deployment"), ...ofKind(objects, "Job")]) {
    for (const container of containersOf(workload)) {
      const image = String(container["image"])
      const tagged = /@sha256:|:[^/:@]+$/.test(image) && !image.endsWith(":latest")
      if (!tagged) problems.push(`${nameOf(workload)}: image ${image} is not a pinned tag or digest`)
    }
  }
  const hpa = ofKind(objects, "HorizontalPodAutoscaler")[0]
  const pdb = ofKind(objects, "PodDisruptionBudget")[0]
  const minReplicas = at(hpa, "spec", "minReplicas")
  const minAvailable = at(pdb, "spec", "minAvailable")
  if (typeof minReplicas !== "number" || minReplicas < 2) problems.push("the api may run a single pod")
  if (typeof minAvailable !== "number" || typeof minReplicas !== "number" || minAvailable >= minReplicas) {
    problems.push("the PodDisruptionBudget blocks every drain at the HPA's minimum")
  }
  return problems
}

const allProblems = (objects: ReadonlyArray<Manifest>, secrets: ReadonlyArray<Manifest> = secretTemplates) => [
  ...validationProblems(objects, secrets),
  ...wiringProblems(objects),
  ...probeProblems(objects, secrets),
  ...workerProbeProblems(objects, secrets),
  ...shutdownProblems(objects, secrets),
  ...kedaProblems(objects, secrets),
  ...environmentProblems(objects, secrets),
  ...securityProblems(objects, secrets),
  ...migrationProblems(objects, secrets)
]

// ---------------------------------------------------------------------------------------------
// Broken copies
// ---------------------------------------------------------------------------------------------

const REMOVE = Symbol("remove")
type Edit = (old: Json | undefined) => Json | typeof REMOVE

/** A deep copy of `objects` where, in the object `kind`/`name`, the value at `keys` is replaced. */
const broken = (
  objects: ReadonlyArray<Manifest>,
  kind: string,
  name: string,
  keys: ReadonlyArray<string | number>,
  edit: Edit
): ReadonlyArray<Manifest> => {
  const copy = structuredClone(objects) as Array<Manifest>
  const object = named(copy, kind, name)
  if (object === undefined) throw new Error(`no ${kind} ${name} to break`)
  const parent = at(object, ...keys.slice(0, -1)) as Record<string | number, Json>
  const key = keys.at(-1) as string | number
  if (parent === undefined) throw new Error(`${kind} ${name} has no ${keys.slice(0, -1).join(".")}`)
  const next = edit(parent[key])
  if (next === REMOVE) delete parent[key]
  else parent[key] = next
  return copy
}

const API = ["spec", "template", "spec", "containers", 0] as const
const WORKER = ["spec", "template", "spec", "containers", 0] as const
const TRIGGER = ["spec", "triggers", 0, "metadata"] as const

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

describe("the app's facts the checks rely on", () => {
  it("reads them from the app, not from a copy", () => {
    expect(waitListKey("wingmate")).toBe("wingmate:sessions:wait")
    expect(openApiGets).toEqual(expect.arrayContaining(["/health/live", "/health/ready"]))
    expect(appEnvNames).toContain("QUEUE_SHUTDOWN_GRACE_MS")
    expect(appEnvNames).not.toContain("QUEUE_CONCURENCY")
    const defaults = decodeConfig({})
    expect(Either.isRight(defaults) && [defaults.right.shutdownTimeoutMs, defaults.right.queue]).toMatchObject([
      10_000,
      { prefix: "wingmate", shutdownGraceMs: 8_000 }
    ])
  })
})

describe.each([
  ["base", base],
  ["overlays/production", production]
])("deploy/kubernetes/%s", (_, objects) => {
  it("renders every kind the app needs", () => {
    expect(objects.map(nameOf)).toEqual(
      expect.arrayContaining([
        "ConfigMap wingmate-config",
        "Deployment wingmate-api",
        "Service wingmate-api",
        "HorizontalPodAutoscaler wingmate-api",
        "PodDisruptionBudget wingmate-api",
        "Deployment wingmate-worker",
        "ScaledObject wingmate-worker",
        "TriggerAuthentication wingmate-redis",
        "Job wingmate-migrate"
      ])
    )
  })

  it("is valid for the pinned Kubernetes and KEDA schemas, with no unknown field", () => {
    expect(validationProblems(objects, secretTemplates)).toEqual([])
  })

  it("passes every check against the app", () => {
    expect(allProblems(objects)).toEqual([])
  })
})

describe("deploy/kubernetes/overlays/production", () => {
  it("is a release: own namespace, pinned image, room for drains", () => {
    expect(releaseProblems(production)).toEqual([])
  })

  it("patches replicas and resources over the base, keeping the rest", () => {
    const api = named(production, "Deployment", "wingmate-api") as Manifest
    expect(at(api, ...API, "resources", "limits", "memory")).toBe("1Gi")
    expect(at(api, ...API, "readinessProbe", "httpGet", "path")).toBe("/health/ready")
    expect(at(named(production, "HorizontalPodAutoscaler", "wingmate-api"), "spec", "minReplicas")).toBe(3)
    expect(at(named(production, "ScaledObject", "wingmate-worker"), "spec", "minReplicaCount")).toBe(2)
    expect(at(named(production, "ScaledObject", "wingmate-worker"), ...TRIGGER, "listName")).toBe(
      at(named(base, "ScaledObject", "wingmate-worker"), ...TRIGGER, "listName")
    )
  })
})

describe("each check refuses a broken copy", () => {
  it.each<[string, ReadonlyArray<Manifest>, string]>([
    // Schemas
    [
      "a string replica count",
      broken(base, "HorizontalPodAutoscaler", "wingmate-api", ["spec", "minReplicas"], () => "2"),
      "minReplicas must be integer"
    ],
    [
      "a misspelt field",
      broken(base, "Deployment", "wingmate-api", [...API, "imagePullPolicyy"], () => "Always"),
      "/imagePullPolicyy: unknown field"
    ],
    [
      "a ScaledObject without target",
      broken(base, "ScaledObject", "wingmate-worker", ["spec", "scaleTargetRef"], () => REMOVE),
      "data/spec must have required property scaleTargetRef"
    ],
    [
      "an unquoted boolean in the ConfigMap",
      broken(base, "ConfigMap", "wingmate-config", ["data", "DATABASE_MIGRATE_ON_BOOT"], () => false),
      "must be string"
    ],
    // Wiring
    [
      "a Service selecting nothing",
      broken(base, "Service", "wingmate-api", ["spec", "selector", "app.kubernetes.io/component"], () => "apii"),
      "Service wingmate-api: does not select the api pods"
    ],
    [
      "a fixed replica count",
      broken(base, "Deployment", "wingmate-worker", ["spec", "replicas"], () => 3),
      "Deployment wingmate-worker: sets replicas"
    ],
    // Probes
    [
      "a worker probe on another port than WORKER_HEALTH_PORT",
      broken(base, "Deployment", "wingmate-worker", [...API, "env", 0, "value"], () => "3002"),
      "the worker's livenessProbe port is not its WORKER_HEALTH_PORT (3002)"
    ],
    [
      "a worker probe that is not an httpGet",
      broken(base, "Deployment", "wingmate-worker", [...API, "livenessProbe", "httpGet"], () => REMOVE),
      "the worker's livenessProbe is not an httpGet"
    ],
    [
      "a probe on a route the api does not serve",
      broken(base, "Deployment", "wingmate-api", [...API, "readinessProbe", "httpGet", "path"], () => "/healthz"),
      "readinessProbe /healthz is not a GET route"
    ],
    [
      "liveness on readiness (a database outage would restart every pod)",
      broken(base, "Deployment", "wingmate-api", [...API, "livenessProbe", "httpGet", "path"], () => "/health/ready"),
      "livenessProbe is /health/ready, expected /health/live"
    ],
    [
      "a probe on another port than PORT",
      broken(base, "ConfigMap", "wingmate-config", ["data", "PORT"], () => "8080"),
      "is not the app's PORT 8080"
    ],
    // Shutdown
    [
      "an api grace below the drain",
      broken(
        base,
        "Deployment",
        "wingmate-api",
        ["spec", "template", "spec", "terminationGracePeriodSeconds"],
        () => 12
      ),
      "does not exceed preStop 5000 ms + SHUTDOWN_TIMEOUT_MS 10000 ms"
    ],
    [
      "a drain raised over the grace",
      broken(base, "ConfigMap", "wingmate-config", ["data", "SHUTDOWN_TIMEOUT_MS"], () => "30000"),
      "SHUTDOWN_TIMEOUT_MS 30000 ms"
    ],
    [
      "a worker grace below QUEUE_SHUTDOWN_GRACE_MS",
      broken(base, "ConfigMap", "wingmate-config", ["data", "QUEUE_SHUTDOWN_GRACE_MS"], () => "45000"),
      "QUEUE_SHUTDOWN_GRACE_MS 45000 ms"
    ],
    // KEDA
    [
      "BullMQ's default prefix in listName",
      broken(base, "ScaledObject", "wingmate-worker", [...TRIGGER, "listName"], () => "bull:sessions:wait"),
      "is not the queue's wait list wingmate:sessions:wait"
    ],
    [
      "QUEUE_PREFIX changed without the listName",
      broken(base, "ConfigMap", "wingmate-config", ["data", "QUEUE_PREFIX"], () => "wm"),
      "is not the queue's wait list wm:sessions:wait"
    ],
    [
      "a listLength of zero",
      broken(base, "ScaledObject", "wingmate-worker", [...TRIGGER, "listLength"], () => "0"),
      "listLength is not a positive integer"
    ],
    [
      "scale to zero",
      broken(base, "ScaledObject", "wingmate-worker", ["spec", "minReplicaCount"], () => 0),
      "minReplicaCount below 1"
    ],
    [
      "a missing TriggerAuthentication",
      broken(
        base,
        "ScaledObject",
        "wingmate-worker",
        ["spec", "triggers", 0, "authenticationRef", "name"],
        () => "redis"
      ),
      "TriggerAuthentication does not exist"
    ],
    // Environment and Secrets
    [
      "a misspelt variable",
      broken(base, "ConfigMap", "wingmate-config", ["data", "QUEUE_CONCURENCY"], () => "16"),
      "ConfigMap key QUEUE_CONCURENCY is not a variable the app reads"
    ],
    [
      "a value the app refuses",
      broken(base, "ConfigMap", "wingmate-config", ["data", "QUEUE_CONCURRENCY"], () => "lots"),
      "QUEUE_CONCURRENCY: invalid value"
    ],
    [
      "a secret in the ConfigMap",
      broken(base, "ConfigMap", "wingmate-config", ["data", "OPENAI_API_KEY"], () => "<key>"),
      "OPENAI_API_KEY is both in the ConfigMap and in the Secret"
    ],
    [
      "a reference to an unknown Secret",
      broken(base, "Job", "wingmate-migrate", [...WORKER, "env", 0, "valueFrom", "secretKeyRef", "name"], () => "db"),
      "secret db/DATABASE_URL is not in the templates"
    ],
    // Security
    [
      "a writable root filesystem",
      broken(
        base,
        "Deployment",
        "wingmate-worker",
        [...WORKER, "securityContext", "readOnlyRootFilesystem"],
        () => false
      ),
      "container worker: root filesystem is writable"
    ],
    [
      "capabilities kept",
      broken(base, "Deployment", "wingmate-api", [...API, "securityContext", "capabilities"], () => REMOVE),
      "container api: keeps capabilities"
    ],
    [
      "root",
      broken(base, "Job", "wingmate-migrate", ["spec", "template", "spec", "securityContext", "runAsUser"], () => 0),
      "does not run as uid 1000"
    ],
    [
      "no memory limit",
      broken(base, "Deployment", "wingmate-worker", [...WORKER, "resources", "limits", "memory"], () => REMOVE),
      "no memory limits"
    ],
    [
      "DATA_DIR not mounted",
      broken(base, "Deployment", "wingmate-api", [...API, "volumeMounts", 0, "mountPath"], () => "/data"),
      "/app/.data is not a writable emptyDir"
    ],
    // Migration
    [
      "a misspelt script",
      broken(base, "Job", "wingmate-migrate", [...WORKER, "command", 2], () => "db:migrate:deplyo"),
      "not a package.json script"
    ]
  ])("%s", (_, objects, problem) => {
    expect(allProblems(objects).join("\n")).toContain(problem)
  })

  it("a Secret template with a real-looking value", () => {
    const secrets = structuredClone(secretTemplates) as Array<Manifest>
    ;(at(secrets[0], "stringData") as Record<string, Json>)["OPENAI_API_KEY"] = "sk-proj-abc123"
    expect(allProblems(base, secrets).join("\n")).toContain("OPENAI_API_KEY holds a value, not a <placeholder>")
  })

  it("a Secret among the rendered objects", () => {
    expect(allProblems([...base, ...secretTemplates]).join("\n")).toContain(
      "Secret wingmate-secrets is rendered: applying would overwrite the real one"
    )
  })

  it.each<[string, ReadonlyArray<Manifest>, string]>([
    [
      "an untagged image",
      broken(production, "Deployment", "wingmate-worker", [...WORKER, "image"], () => "wingmate-backend"),
      "image wingmate-backend is not a pinned tag"
    ],
    [
      "latest",
      broken(production, "Job", "wingmate-migrate", [...WORKER, "image"], () => "wingmate-backend:latest"),
      "is not a pinned tag"
    ],
    [
      "an object outside the namespace",
      broken(production, "Service", "wingmate-api", ["metadata", "namespace"], () => REMOVE),
      "Service wingmate-api: not in the namespace wingmate"
    ],
    [
      "a PDB as strict as the HPA minimum",
      broken(production, "PodDisruptionBudget", "wingmate-api", ["spec", "minAvailable"], () => 3),
      "blocks every drain"
    ],
    [
      "no Pod Security Standard",
      broken(production, "Namespace", "wingmate", ["metadata", "labels"], () => REMOVE),
      "restricted Pod Security Standard"
    ]
  ])("release: %s", (_, objects, problem) => {
    expect(releaseProblems(objects).join("\n")).toContain(problem)
  })
})
