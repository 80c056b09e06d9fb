/** Which npm-shipped model local OCR reads a language with, and that both ship with the package. */
import { describe, expect, it } from "@effect/vitest"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { modelOf, modelPath } from "../../../../src/core/ocr/local.ts"

describe("local OCR language", () => {
  it("French tags read with the French model, anything else with the English one", () => {
    expect(["fr", "fr-FR", "FR-ca", "fr_BE", " fr "].map(modelOf)).toEqual(["fra", "fra", "fra", "fra", "fra"])
    expect(["en", "en-GB", "de", "", null, undefined, "fry", "french"].map(modelOf)).toEqual(
      Array<string>(8).fill("eng")
    )
  })

  it("both models are installed, offline, where the workers look for them", () => {
    expect(existsSync(join(modelPath("eng"), "eng.traineddata.gz"))).toBe(true)
    expect(existsSync(join(modelPath("fra"), "fra.traineddata.gz"))).toBe(true)
  })
})
