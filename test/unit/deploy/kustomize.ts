/**
 * A tiny offline renderer for the subset of kustomize that deploy/kubernetes uses, so that the
 * tests can validate what `kubectl apply -k` would send without kubectl or a cluster:
 *
 * - `resources`: YAML files (one or more documents) and folders holding a kustomization.yaml;
 * - `patches`: `- path: file.yaml`, strategic-merge patches found by apiVersion, kind and name.
 *   Maps merge; lists of containers, volumes, env, ports and volumeMounts merge by their key
 *   (name, containerPort, mountPath), as Kubernetes' patch strategy says; other lists, and every
 *   list of a custom resource, are replaced (kustomize's JSON-merge fallback); `null` removes;
 * - `namespace`: set on every namespaced object;
 * - `labels`: `pairs` added to metadata.labels only (`includeSelectors: false`, no templates);
 * - `images`: `name` → `newName` / `newTag` / `digest` on every container of a pod template.
 *
 * Anything else in a kustomization.yaml (generators, namePrefix, replicas, inline or targeted
 * patches, `$patch` directives…) is refused with an error rather than ignored: the test must not
 * validate something other than what kustomize would produce. YAML is read as YAML 1.1, like
 * Kubernetes' own parser (`on`, `yes` are booleans there).
 */
import { readFileSync, statSync } from "node:fs"
import path from "node:path"
import { parseAllDocuments } from "yaml"

export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }
export type JsonObject = { readonly [key: string]: Json }
/** A Kubernetes object as rendered. */
export type Manifest = JsonObject & {
  readonly apiVersion: string
  readonly kind: string
  readonly metadata: JsonObject
}

const SUPPORTED = new Set(["apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"])
const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"])
/** Built-in kinds whose lists merge by key under a strategic-merge patch. */
const BUILT_IN_GROUPS = new Set(["v1", "apps/v1", "batch/v1", "autoscaling/v2", "policy/v1"])
const MERGE_KEYS: Readonly<Record<string, string>> = {
  containers: "name",
  initContainers: "name",
  volumes: "name",
  env: "name",
  ports: "containerPort",
  volumeMounts: "mountPath"
}

export const isObject = (value: Json | undefined): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const asArray = (value: Json | undefined): ReadonlyArray<Json> => (Array.isArray(value) ? value : [])

/** Every YAML document of a file (empty documents skipped), as Kubernetes reads them. */
export const readYamlDocuments = (file: string): ReadonlyArray<Json> =>
  parseAllDocuments(readFileSync(file, "utf8"), { version: "1.1" }).flatMap((document) => {
    if (document.errors.length > 0) throw new Error(`${file}: ${document.errors.map((e) => e.message).join("; ")}`)
    const value = document.toJS() as Json
    return value === null || value === undefined ? [] : [value]
  })

const asManifest = (value: Json, source: string): Manifest => {
  if (!isObject(value) || typeof value["apiVersion"] !== "string" || typeof value["kind"] !== "string") {
    throw new Error(`${source}: not a Kubernetes object (apiVersion and kind)`)
  }
  if (!isObject(value["metadata"]) || typeof value["metadata"]["name"] !== "string") {
    throw new Error(`${source}: ${value["kind"]} without metadata.name`)
  }
  return value as Manifest
}

export const identify = (object: Manifest): string => `${object.apiVersion} ${object.kind} ${object.metadata["name"]}`

/** Strategic-merge patch of `target` by `patch` (see the header for the subset). */
export const strategicMerge = (target: Json | undefined, patch: Json, builtIn: boolean, field = ""): Json => {
  if (isObject(patch)) {
    if ("$patch" in patch || Object.keys(patch).some((key) => key.startsWith("$"))) {
      throw new Error(`unsupported strategic-merge directive in ${field || "the patch"}`)
    }
    const base: JsonObject = isObject(target) ? target : {}
    const merged: Record<string, Json> = { ...base }
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete merged[key]
      else merged[key] = strategicMerge(base[key], value, builtIn, key)
    }
    return merged
  }
  const mergeKey = MERGE_KEYS[field]
  if (Array.isArray(patch) && builtIn && mergeKey !== undefined && Array.isArray(target)) {
    const merged: Array<Json> = [...target]
    for (const item of patch as ReadonlyArray<Json>) {
      const key = isObject(item) ? item[mergeKey] : undefined
      if (key === undefined) throw new Error(`a patched ${field} item has no ${mergeKey}`)
      const index = merged.findIndex((existing) => isObject(existing) && existing[mergeKey] === key)
      if (index === -1) merged.push(item)
      else merged[index] = strategicMerge(merged[index], item, builtIn, "")
    }
    return merged
  }
  return patch
}

/** `name[:tag][@digest]`, the registry's port kept in the name. */
const splitImage = (image: string) => {
  const [withoutDigest = "", digest] = image.split("@")
  const colon = withoutDigest.lastIndexOf(":")
  const hasTag = colon > withoutDigest.lastIndexOf("/")
  return {
    name: hasTag ? withoutDigest.slice(0, colon) : withoutDigest,
    tag: hasTag ? withoutDigest.slice(colon + 1) : undefined,
    digest
  }
}

type ImageRule = { name: string; newName?: string; newTag?: string; digest?: string }

const setImages = (object: Manifest, rules: ReadonlyArray<ImageRule>): Manifest => {
  const podSpec = (object["spec"] as JsonObject | undefined)?.["template"] as JsonObject | undefined
  const spec = podSpec?.["spec"]
  if (!isObject(spec)) return object
  const retag = (container: Json): Json => {
    if (!isObject(container) || typeof container["image"] !== "string") return container
    const image = splitImage(container["image"])
    const rule = rules.find((candidate) => candidate.name === image.name)
    if (rule === undefined) return container
    const kept =
      (image.tag !== undefined ? `:${image.tag}` : "") + (image.digest !== undefined ? `@${image.digest}` : "")
    const suffix = rule.digest !== undefined ? `@${rule.digest}` : rule.newTag !== undefined ? `:${rule.newTag}` : kept
    const reference = `${rule.newName ?? image.name}${suffix}`
    return { ...container, image: reference }
  }
  const newSpec: Record<string, Json> = { ...spec }
  for (const field of ["containers", "initContainers"]) {
    if (Array.isArray(spec[field])) newSpec[field] = asArray(spec[field]).map(retag)
  }
  return strategicMerge(object, { spec: { template: { spec: newSpec } } }, false) as Manifest
}

const stringRecord = (value: Json | undefined, what: string): Readonly<Record<string, string>> => {
  if (!isObject(value) || Object.values(value).some((v) => typeof v !== "string")) {
    throw new Error(`${what} must map names to strings`)
  }
  return value as Readonly<Record<string, string>>
}

/** Renders the kustomization in `dir`, as `kubectl kustomize dir` would for this subset. */
export const render = (dir: string): ReadonlyArray<Manifest> => {
  const file = path.join(dir, "kustomization.yaml")
  const [kustomization, ...extra] = readYamlDocuments(file)
  if (!isObject(kustomization) || extra.length > 0) throw new Error(`${file}: expected one mapping`)
  for (const key of Object.keys(kustomization)) {
    if (!SUPPORTED.has(key)) throw new Error(`${file}: '${key}' is not supported by this renderer`)
  }

  let objects: Array<Manifest> = asArray(kustomization["resources"]).flatMap((entry) => {
    if (typeof entry !== "string") throw new Error(`${file}: a resource must be a path`)
    const resource = path.join(dir, entry)
    return statSync(resource).isDirectory()
      ? [...render(resource)]
      : readYamlDocuments(resource).map((doc) => asManifest(doc, resource))
  })
  const seen = new Set<string>()
  for (const object of objects) {
    if (seen.has(identify(object))) throw new Error(`${file}: ${identify(object)} is defined twice`)
    seen.add(identify(object))
  }

  for (const entry of asArray(kustomization["patches"])) {
    if (!isObject(entry) || typeof entry["path"] !== "string" || Object.keys(entry).length !== 1) {
      throw new Error(`${file}: only '- path: <file>' patches are supported`)
    }
    const patchFile = path.join(dir, entry["path"])
    for (const patch of readYamlDocuments(patchFile).map((doc) => asManifest(doc, patchFile))) {
      const matches = objects.filter((object) => identify(object) === identify(patch))
      if (matches.length !== 1) throw new Error(`${patchFile}: ${identify(patch)} matches ${matches.length} objects`)
      const builtIn = BUILT_IN_GROUPS.has(patch.apiVersion)
      objects = objects.map((object) =>
        object === matches[0] ? (strategicMerge(object, patch, builtIn) as Manifest) : object
      )
    }
  }

  const namespace = kustomization["namespace"]
  if (namespace !== undefined) {
    if (typeof namespace !== "string") throw new Error(`${file}: namespace must be a string`)
    objects = objects.map((object) =>
      CLUSTER_SCOPED.has(object.kind) ? object : { ...object, metadata: { ...object.metadata, namespace } }
    )
  }

  for (const entry of asArray(kustomization["labels"])) {
    if (!isObject(entry)) throw new Error(`${file}: a labels entry must be a mapping`)
    for (const key of Object.keys(entry)) {
      if (key !== "pairs" && key !== "includeSelectors") throw new Error(`${file}: labels.${key} is not supported`)
    }
    if (entry["includeSelectors"] !== false) throw new Error(`${file}: only labels with includeSelectors: false`)
    const pairs = stringRecord(entry["pairs"], `${file}: labels.pairs`)
    objects = objects.map((object) => ({
      ...object,
      metadata: {
        ...object.metadata,
        labels: { ...(isObject(object.metadata["labels"]) ? object.metadata["labels"] : {}), ...pairs }
      }
    }))
  }

  const rules = asArray(kustomization["images"]).map((entry): ImageRule => {
    const rule = stringRecord(entry, `${file}: an images entry`)
    for (const key of Object.keys(rule)) {
      if (!["name", "newName", "newTag", "digest"].includes(key))
        throw new Error(`${file}: images.${key} is not supported`)
    }
    if (rule["name"] === undefined) throw new Error(`${file}: an images entry without name`)
    return rule as ImageRule
  })
  return rules.length === 0 ? objects : objects.map((object) => setImages(object, rules))
}
