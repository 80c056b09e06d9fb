/**
 * Validation of rendered objects against the Kubernetes API's OpenAPI schemas as compiled in
 * kubernetes-models 5.1.0 (and the CRD schemas of KEDA in @kubernetes-models/keda 2.0.0 and of the
 * Prometheus Operator in @kubernetes-models/prometheus-operator 6.0.0), pinned.
 *
 * Those validators check types, required fields and enums, but let unknown fields through, where
 * `kubectl apply` (strict field validation, the default since Kubernetes 1.27) refuses them. So
 * the object is given to the validator behind proxies that record which fields the validator
 * reads: a field it never looked at, in an object whose fields it did not list as a map (labels,
 * ConfigMap data, resource quantities are iterated), is unknown to the schema.
 */
import { ConfigMap } from "kubernetes-models/v1/ConfigMap"
import { Namespace } from "kubernetes-models/v1/Namespace"
import { Secret } from "kubernetes-models/v1/Secret"
import { Service } from "kubernetes-models/v1/Service"
import { Deployment } from "kubernetes-models/apps/v1/Deployment"
import { Job } from "kubernetes-models/batch/v1/Job"
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler"
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget"
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject"
import { TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1/TriggerAuthentication"
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule"
import type { Json, Manifest } from "./kustomize.ts"

/** The kinds these manifests may use, each with its schema's validator. */
const MODELS: ReadonlyArray<{ readonly apiVersion: string; readonly kind: string; readonly prototype: object }> = [
  ConfigMap,
  Namespace,
  Secret,
  Service,
  Deployment,
  Job,
  HorizontalPodAutoscaler,
  PodDisruptionBudget,
  ScaledObject,
  TriggerAuthentication,
  PrometheusRule
]

interface Visit {
  readonly path: string
  readonly keys: ReadonlyArray<string>
  readonly read: Set<string>
  enumerated: boolean
}

/** A copy of `value` whose objects record the fields read from them. */
const tracked = (value: Json, path: string, visits: Array<Visit>): Json => {
  if (Array.isArray(value)) return value.map((item: Json, index) => tracked(item, `${path}/${index}`, visits))
  if (value === null || typeof value !== "object") return value
  const visit: Visit = { path, keys: Object.keys(value), read: new Set(), enumerated: false }
  visits.push(visit)
  const copy = Object.fromEntries(
    Object.entries(value).map(([key, item]) => [key, tracked(item as Json, `${path}/${key}`, visits)])
  )
  return new Proxy(copy, {
    get: (target, key, receiver) => {
      if (typeof key === "string") visit.read.add(key)
      return Reflect.get(target, key, receiver)
    },
    has: (target, key) => {
      if (typeof key === "string") visit.read.add(key)
      return Reflect.has(target, key)
    },
    ownKeys: (target) => {
      visit.enumerated = true
      return Reflect.ownKeys(target)
    }
  })
}

/** Schema problems of one object, as `<object> <path>: <message>`; empty when valid. */
export const schemaProblems = (object: Manifest): ReadonlyArray<string> => {
  const name = `${object.kind} ${String(object.metadata["name"])}`
  const model = MODELS.find((m) => m.apiVersion === object.apiVersion && m.kind === object.kind)
  if (model === undefined) return [`${name}: no schema for ${object.apiVersion} ${object.kind}`]
  const visits: Array<Visit> = []
  const problems: Array<string> = []
  try {
    ;(model.prototype as { validate: (this: Json) => void }).validate.call(tracked(object, "", visits))
  } catch (error) {
    problems.push(`${name}: ${error instanceof Error ? error.message : String(error)}`)
  }
  for (const visit of visits) {
    if (visit.enumerated) continue
    for (const key of visit.keys) {
      if (!visit.read.has(key)) problems.push(`${name} ${visit.path}/${key}: unknown field`)
    }
  }
  return problems
}
