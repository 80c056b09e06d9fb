/**
 * The alerts (`deploy/kubernetes/monitoring`): every expression is PromQL as Prometheus' own parser
 * reads it (@prometheus-io/lezer-promql, the grammar of Prometheus' UI), names only series the api
 * and worker export (`src/core/metrics.ts`, with the suffixes the Prometheus format adds) or
 * Prometheus' `up`, and every alert has a severity, a summary and a runbook section that exists.
 * The object itself is checked against the Prometheus Operator's CRD schema.
 */
import { parser } from "@prometheus-io/lezer-promql"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { isObject, render, type Json } from "./kustomize.ts"
import { schemaProblems } from "./kubernetes-schema.ts"

const root = join(import.meta.dirname, "..", "..", "..")
const manifests = render(join(root, "deploy", "kubernetes", "monitoring"))

interface Rule {
  readonly alert: string
  readonly expr: string
  readonly for: string | undefined
  readonly severity: string | undefined
  readonly summary: string | undefined
  readonly runbook: string | undefined
}

const text = (value: Json | undefined): string | undefined => (typeof value === "string" ? value : undefined)

const rules: ReadonlyArray<Rule> = manifests
  .filter((object) => object.kind === "PrometheusRule")
  .flatMap((object) => {
    const spec = object["spec"]
    const groups = isObject(spec) && Array.isArray(spec["groups"]) ? spec["groups"] : []
    return groups.flatMap((group: Json) => (isObject(group) && Array.isArray(group["rules"]) ? group["rules"] : []))
  })
  .filter(isObject)
  .map((rule) => {
    const labels = isObject(rule["labels"]) ? rule["labels"] : {}
    const annotations = isObject(rule["annotations"]) ? rule["annotations"] : {}
    return {
      alert: String(rule["alert"]),
      expr: String(rule["expr"]),
      for: text(rule["for"]),
      severity: text(labels["severity"]),
      summary: text(annotations["summary"]),
      runbook: text(annotations["runbook_url"])
    }
  })

/** Every series name the processes export: counters with `_total`, histograms' three series. */
const exported = (() => {
  const source = readFileSync(join(root, "src", "core", "metrics.ts"), "utf8")
  const names = new Set(["up"])
  for (const [, kind, name] of source.matchAll(/Metric\.(counter|gauge|histogram)\(\s*"([a-z_]+)"/g)) {
    if (name === undefined) continue
    if (kind === "counter") names.add(`${name.replace(/_total$/, "")}_total`)
    else if (kind === "histogram") for (const suffix of ["_bucket", "_count", "_sum"]) names.add(`${name}${suffix}`)
    else names.add(name)
  }
  return names
})()

/** The parse's error nodes (none for valid PromQL) and the metric names its selectors use. */
const parse = (expr: string) => {
  const errors: Array<string> = []
  const metrics: Array<string> = []
  parser.parse(expr).iterate({
    enter: (node) => {
      if (node.type.isError) errors.push(`at ${node.from}: ${JSON.stringify(expr.slice(node.from, node.from + 20))}`)
      if (node.type.name === "Identifier" && node.node.parent?.type.name === "VectorSelector")
        metrics.push(expr.slice(node.from, node.to))
    }
  })
  return { errors, metrics }
}

/** The anchors GitHub gives the runbook's `##` headings. */
const runbookAnchors = new Set(
  [...readFileSync(join(root, "docs", "runbook.md"), "utf8").matchAll(/^## (.+)$/gm)].map((match) =>
    (match[1] ?? "")
      .toLowerCase()
      .replace(/[^a-z0-9 -]/g, "")
      .replace(/ /g, "-")
  )
)

describe("the alerts", () => {
  it("are one PrometheusRule, valid against the operator's CRD schema (unknown fields refused)", () => {
    expect(manifests.map((object) => `${object.kind} ${String(object.metadata["namespace"])}`)).toEqual([
      "PrometheusRule wingmate"
    ])
    expect(manifests.flatMap(schemaProblems)).toEqual([])
  })

  it("are there, each named once", () => {
    expect(rules.length).toBeGreaterThanOrEqual(10)
    expect(new Set(rules.map((rule) => rule.alert)).size).toBe(rules.length)
  })

  it.each(rules.map((rule) => [rule.alert, rule] as const))("%s: valid PromQL on exported series only", (_, rule) => {
    const { errors, metrics } = parse(rule.expr)
    expect(errors).toEqual([])
    expect(metrics.length).toBeGreaterThan(0)
    for (const metric of metrics) expect(exported, `${metric} is not exported`).toContain(metric)
  })

  it.each(rules.map((rule) => [rule.alert, rule] as const))("%s: severity, summary, runbook section", (_, rule) => {
    expect(["critical", "warning"]).toContain(rule.severity)
    expect(rule.summary?.length ?? 0).toBeGreaterThan(10)
    if (rule.for !== undefined) expect(rule.for).toMatch(/^\d+[smh]$/)
    const anchor = /^docs\/runbook\.md#(.+)$/.exec(rule.runbook ?? "")?.[1]
    expect(anchor).toBe(rule.alert.toLowerCase())
    expect(runbookAnchors).toContain(anchor)
  })

  it("the heap alert's cap is the image's", () => {
    const cap = /--max-old-space-size=(\d+)/.exec(readFileSync(join(root, "Dockerfile"), "utf8"))?.[1]
    const heap = rules.find((rule) => rule.alert === "WingmateHeapNearCap")
    expect(heap?.expr).toContain(`${cap} * 1024 * 1024`)
  })

  // The checks above can fail: a typo in a name or a broken expression is caught.
  it("the parser and the name check refuse what is wrong", () => {
    expect(parse("sum(rate(wingmate_queue_jobs[5m]) >").errors.length).toBeGreaterThan(0)
    expect(exported).not.toContain(parse("wingmate_queue_job > 1").metrics[0])
  })
})
