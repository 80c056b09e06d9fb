/** Magic bytes: what an upload's first bytes say it is. */
import { describe, expect, it } from "@effect/vitest"
import { detectImageType, MAGIC_BYTES } from "../../../src/core/image/magic.ts"
import { randomNoise, tinyImage } from "../../fixtures/images.ts"

describe("detectImageType", () => {
  it("recognises PNG, JPEG and WebP from their first bytes", async () => {
    expect(detectImageType((await tinyImage("png")).subarray(0, MAGIC_BYTES))).toBe("image/png")
    expect(detectImageType((await tinyImage("jpeg")).subarray(0, MAGIC_BYTES))).toBe("image/jpeg")
    expect(detectImageType((await tinyImage("webp")).subarray(0, MAGIC_BYTES))).toBe("image/webp")
  })

  it("anything else, or too few bytes, is nothing", () => {
    expect(detectImageType(new Uint8Array())).toBeUndefined()
    expect(detectImageType(new Uint8Array([0x89, 0x50, 0x4e]))).toBeUndefined()
    expect(detectImageType(Buffer.from("GIF89a...."))).toBeUndefined()
    expect(detectImageType(Buffer.from("RIFF\0\0\0\0WAVEfmt "))).toBeUndefined()
    expect(detectImageType(Buffer.from("<svg xmlns='http://www.w3.org/2000/svg'/>"))).toBeUndefined()
    expect(detectImageType(Buffer.concat([Buffer.from([0]), randomNoise(16)]))).toBeUndefined()
  })
})
