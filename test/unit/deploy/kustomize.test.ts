/** The offline kustomize subset used to validate deploy/kubernetes: what it does, and what it refuses. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { render, strategicMerge } from "./kustomize.ts"

const scratch = mkdtempSync(path.join(tmpdir(), "wingmate-kustomize-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/** Writes `files` into a fresh folder and returns it. */
const tree = (name: string, files: Readonly<Record<string, string>>) => {
  const dir = path.join(scratch, name)
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true })
    writeFileSync(path.join(dir, file), text)
  }
  return dir
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: { name: web }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers:
        - { name: web, image: "shop/web:1", env: [{ name: A, value: "1" }] }
        - { name: sidecar, image: "proxy:2" }
`

describe("kustomize subset", () => {
  it("merges patches by name, sets the namespace, labels and image tags", () => {
    const dir = tree("ok", {
      "base/kustomization.yaml": "resources: [web.yaml]\nlabels: [{ pairs: { team: a }, includeSelectors: false }]\n",
      "base/web.yaml": deployment,
      "prod/kustomization.yaml":
        "namespace: prod\nresources: [../base]\nimages: [{ name: shop/web, newTag: '7' }]\npatches: [{ path: patch.yaml }]\n",
      "prod/patch.yaml":
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\nspec:\n  template:\n    spec:\n      containers:\n        - { name: web, env: [{ name: B, value: '2' }] }\n"
    })
    const [web] = render(path.join(dir, "prod"))
    expect(web).toMatchObject({
      metadata: { name: "web", namespace: "prod", labels: { team: "a" } },
      spec: {
        selector: { matchLabels: { app: "web" } },
        template: {
          spec: {
            containers: [
              {
                name: "web",
                image: "shop/web:7",
                env: [
                  { name: "A", value: "1" },
                  { name: "B", value: "2" }
                ]
              },
              { name: "sidecar", image: "proxy:2" }
            ]
          }
        }
      }
    })
  })

  it("replaces the lists of custom resources (JSON merge), removes on null", () => {
    const target = { spec: { triggers: [{ type: "cpu" }], min: 1, keep: true } }
    expect(strategicMerge(target, { spec: { triggers: [{ type: "redis" }], min: null } }, false)).toEqual({
      spec: { triggers: [{ type: "redis" }], keep: true }
    })
  })

  it.each([
    [
      "an unsupported field",
      { "kustomization.yaml": "namePrefix: x-\nresources: [web.yaml]\n" },
      "'namePrefix' is not supported"
    ],
    [
      "a patch matching nothing",
      {
        "kustomization.yaml": "resources: [web.yaml]\npatches: [{ path: p.yaml }]\n",
        "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: api }\n"
      },
      "matches 0 objects"
    ],
    [
      "a $patch directive",
      {
        "kustomization.yaml": "resources: [web.yaml]\npatches: [{ path: p.yaml }]\n",
        "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\nspec: { $patch: replace }\n"
      },
      "unsupported strategic-merge directive"
    ],
    [
      "a targeted patch",
      { "kustomization.yaml": "resources: [web.yaml]\npatches: [{ path: p.yaml, target: { kind: Deployment } }]\n" },
      "only '- path: <file>' patches"
    ],
    [
      "labels on selectors",
      { "kustomization.yaml": "resources: [web.yaml]\nlabels: [{ pairs: { a: b } }]\n" },
      "includeSelectors: false"
    ],
    ["the same object twice", { "kustomization.yaml": "resources: [web.yaml, web.yaml]\n" }, "is defined twice"],
    ["invalid YAML", { "kustomization.yaml": "resources: [web.yaml\n" }, "kustomization.yaml"]
  ])("refuses %s", (name, files, message) => {
    const dir = tree(name.replaceAll(/\W+/g, "-"), { "web.yaml": deployment, ...files })
    expect(() => render(dir)).toThrow(message)
  })
})
