/** ImageProcessor on the real sharp: limits, broken input, orientation, metadata, sizes, hash. */
import { describe, expect, it, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Either } from "effect"
import { createHash } from "node:crypto"
import sharp from "sharp"
import { AppConfig } from "../../../src/core/config.ts"
import { ImageProcessor, type ImageOptions } from "../../../src/core/image/image-processor.ts"
import {
  GPS_MARKER,
  orientedJpegWithGps,
  pngBomb,
  randomNoise,
  screenshotPng,
  tinyImage,
  truncatedPng
} from "../../fixtures/images.ts"

/** The configuration's defaults (IMAGE_MAX_EDGE 1280, IMAGE_THUMBNAIL_EDGE 320, IMAGE_MAX_PIXELS 40e6, WebP). */
const options: ImageOptions = Effect.runSync(
  AppConfig.pipe(Effect.provide(AppConfig.Default), Effect.withConfigProvider(ConfigProvider.fromMap(new Map())))
).images

const normalize = (input: Uint8Array) => Effect.flatMap(ImageProcessor, (images) => images.normalize(input))

/** The RGB of one pixel of an encoded image. */
const pixel = (image: Uint8Array, x: number, y: number) =>
  Effect.promise(async () => {
    const { data, info } = await sharp(image).raw().toBuffer({ resolveWithObject: true })
    const at = (y * info.width + x) * info.channels
    return [data[at] ?? 0, data[at + 1] ?? 0, data[at + 2] ?? 0]
  })

const metadataOf = (image: Uint8Array) => Effect.promise(() => sharp(image).metadata())

layer(ImageProcessor.fromOptions(options))("ImageProcessor", (it) => {
  it.effect("a 16000×16000 PNG bomb is refused from its header, without being decoded", () =>
    Effect.gen(function* () {
      const bomb = pngBomb(16_000, 16_000)
      expect(bomb.length).toBeLessThan(100_000)
      const result = yield* Effect.either(normalize(bomb))
      expect(result).toEqual(
        Either.left(
          expect.objectContaining({
            _tag: "ImageError",
            reason: "too-large",
            message: "The image is 16000×16000 pixels; at most 40000000 pixels are accepted",
            details: { width: 16_000, height: 16_000, maxPixels: 40_000_000 }
          })
        )
      )
    })
  )

  it.effect("random bytes are unreadable", () =>
    Effect.gen(function* () {
      const result = yield* Effect.either(normalize(randomNoise()))
      expect(result).toEqual(
        Either.left(
          expect.objectContaining({
            _tag: "ImageError",
            reason: "unreadable",
            message: "The image cannot be decoded: it is corrupt, truncated or not a PNG, JPEG or WebP image"
          })
        )
      )
    })
  )

  it.effect("a truncated PNG fails instead of producing a partial image", () =>
    Effect.gen(function* () {
      const truncated = yield* Effect.promise(truncatedPng)
      const header = yield* metadataOf(truncated)
      expect([header.format, header.width, header.height]).toEqual(["png", 300, 600])
      const result = yield* Effect.either(normalize(truncated))
      expect(result).toEqual(Either.left(expect.objectContaining({ _tag: "ImageError", reason: "unreadable" })))
    })
  )

  it.effect("EXIF orientation is applied, then every piece of metadata (GPS included) is gone", () =>
    Effect.gen(function* () {
      const photo = yield* Effect.promise(orientedJpegWithGps)
      const before = yield* metadataOf(photo)
      expect([before.orientation, before.width, before.height]).toEqual([6, 400, 200])
      expect(photo.includes(Buffer.from(GPS_MARKER))).toBe(true)

      const result = yield* normalize(photo)
      expect(result.source).toEqual({ format: "jpeg", width: 400, height: 200 })
      expect([result.image.width, result.image.height]).toEqual([200, 400])
      // Stored sideways with red on the left: displayed upright, red is on top and blue below.
      const top = yield* pixel(result.image.bytes, 100, 20)
      const bottom = yield* pixel(result.image.bytes, 100, 380)
      expect(top[0]).toBeGreaterThan(200)
      expect(top[2]).toBeLessThan(60)
      expect(bottom[2]).toBeGreaterThan(200)
      expect(bottom[0]).toBeLessThan(60)

      for (const output of [result.image.bytes, result.thumbnail.bytes]) {
        const after = yield* metadataOf(output)
        expect(after.format).toBe("webp")
        expect(after.orientation).toBeUndefined()
        expect(after.exif).toBeUndefined()
        expect(after.xmp).toBeUndefined()
        expect(after.icc).toBeUndefined()
        expect(Buffer.from(output).includes(Buffer.from(GPS_MARKER))).toBe(false)
        expect(Buffer.from(output).includes(Buffer.from("WingmatePhone"))).toBe(false)
      }
    })
  )

  it.effect("a screenshot is resized to the maximum edge, with a thumbnail and the SHA-256 of the result", () =>
    Effect.gen(function* () {
      const shot = yield* Effect.promise(() => screenshotPng(1170, 2532))
      const result = yield* normalize(shot)
      expect(result.source).toEqual({ format: "png", width: 1170, height: 2532 })
      expect(result.image).toMatchObject({ contentType: "image/webp", width: 591, height: 1280 })
      expect(result.thumbnail).toMatchObject({ contentType: "image/webp", width: 148, height: 320 })
      expect(yield* metadataOf(result.image.bytes)).toMatchObject({ format: "webp", width: 591, height: 1280 })
      expect(yield* metadataOf(result.thumbnail.bytes)).toMatchObject({ format: "webp", width: 148, height: 320 })
      expect(result.contentHash).toBe(createHash("sha256").update(result.image.bytes).digest("hex"))
      // Same input, same output: the hash can key caches and deduplication.
      expect((yield* normalize(shot)).contentHash).toBe(result.contentHash)
    })
  )

  it.effect("the image and its thumbnail apart: the same image, and the thumbnail of that image", () =>
    Effect.gen(function* () {
      const images = yield* ImageProcessor
      const shot = yield* Effect.promise(() => screenshotPng(1170, 2532))
      const whole = yield* images.normalize(shot)
      const alone = yield* images.normalizeImage(shot)
      expect(alone.contentHash).toBe(whole.contentHash)
      expect(alone).not.toHaveProperty("thumbnail")
      const thumbnail = yield* images.thumbnailOf(alone.image)
      expect(thumbnail).toMatchObject({ contentType: "image/webp", width: 148, height: 320 })
      expect(Buffer.from(thumbnail.bytes).equals(Buffer.from(whole.thumbnail.bytes))).toBe(true)
    })
  )

  it.effect("the encoders run at their fastest settings: WebP effort 0, JPEG without mozjpeg (bench/README.md)", () =>
    Effect.gen(function* () {
      const shot = yield* Effect.promise(() => screenshotPng(750, 1334))
      const fit = { width: options.maxEdge, height: options.maxEdge, fit: "inside" as const }
      const webp = yield* Effect.promise(() =>
        sharp(shot).resize(fit).webp({ quality: options.quality, effort: 0 }).toBuffer()
      )
      expect(Buffer.from((yield* normalize(shot)).image.bytes).equals(webp)).toBe(true)
      const jpeg = yield* Effect.promise(() =>
        sharp(shot).resize(fit).flatten({ background: "#ffffff" }).jpeg({ quality: options.quality }).toBuffer()
      )
      const asJpeg = yield* normalize(shot).pipe(
        Effect.provide(ImageProcessor.fromOptions({ ...options, format: "jpeg" }))
      )
      expect(Buffer.from(asJpeg.image.bytes).equals(jpeg)).toBe(true)
    })
  )

  it.effect("a small image is not enlarged; PNG, JPEG and WebP inputs are all decoded", () =>
    Effect.gen(function* () {
      for (const format of ["png", "jpeg", "webp"] as const) {
        const result = yield* normalize(yield* Effect.promise(() => tinyImage(format, 64, 48)))
        expect(result.source).toEqual({ format, width: 64, height: 48 })
        expect([result.image.width, result.image.height, result.thumbnail.width]).toEqual([64, 48, 64])
      }
    })
  )

  it.effect("a burst of images is processed, however many arrive at once", () =>
    Effect.gen(function* () {
      const shot = yield* Effect.promise(() => screenshotPng(600, 1300))
      const results = yield* Effect.all(
        Array.from({ length: 8 }, () => normalize(shot)),
        { concurrency: "unbounded" }
      )
      expect(new Set(results.map((result) => result.contentHash)).size).toBe(1)
    })
  )
})

describe("ImageProcessor options", () => {
  it.effect("JPEG output flattens transparency onto white and honours the limits given", () =>
    Effect.gen(function* () {
      const transparent = yield* Effect.promise(() =>
        sharp({ create: { width: 800, height: 400, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
          .png()
          .toBuffer()
      )
      const result = yield* normalize(transparent).pipe(
        Effect.provide(ImageProcessor.fromOptions({ ...options, format: "jpeg", maxEdge: 200, thumbnailEdge: 50 }))
      )
      expect(result.image).toMatchObject({ contentType: "image/jpeg", width: 200, height: 100 })
      expect(result.thumbnail).toMatchObject({ contentType: "image/jpeg", width: 50, height: 25 })
      expect(yield* metadataOf(result.image.bytes)).toMatchObject({ format: "jpeg", hasAlpha: false })
      expect(yield* pixel(result.image.bytes, 10, 10)).toEqual([255, 255, 255])

      const limited = yield* Effect.either(
        normalize(transparent).pipe(Effect.provide(ImageProcessor.fromOptions({ ...options, maxPixels: 100_000 })))
      )
      expect(limited).toEqual(
        Either.left(
          expect.objectContaining({
            reason: "too-large",
            details: { width: 800, height: 400, maxPixels: 100_000 }
          })
        )
      )
    })
  )
})
