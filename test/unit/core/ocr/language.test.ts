/** Which npm-shipped model local OCR reads a language with, and that both ship with the package. */
import { describe, expect, it } from "@effect/vitest"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { modelOf, modelPath, ocrCacheServes, ocrCacheTag } from "../../../../src/core/ocr/local.ts"

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

  // The OCR cache was keyed by the image alone: a local read in English served a French session of
  // the same screenshot (and the other way round), read with the wrong model.
  it("the OCR cache: a local read serves its own model's language only; a vision read any", () => {
    expect(ocrCacheTag("local-ocr", "fr-FR")).toBe("local-ocr:fra")
    expect(ocrCacheTag("local-ocr", null)).toBe("local-ocr:eng")
    expect(ocrCacheTag("vision:gemini-flash", "fr")).toBe("vision:gemini-flash")
    expect(ocrCacheServes("local-ocr:eng", "en-GB")).toBe(true)
    expect(ocrCacheServes("local-ocr:eng", "fr")).toBe(false)
    expect(ocrCacheServes("local-ocr:fra", null)).toBe(false)
    expect(ocrCacheServes("vision:gpt-4o", "fr")).toBe(true)
    // Entries written before the model was part of the tag: their language is unknown, read again.
    expect(ocrCacheServes("local-ocr", "en")).toBe(false)
  })
})
