/**
 * Image normalisation on sharp (libvips), for OCR and for keeping screenshots private:
 * the header is read first and an image over the pixel limit is refused before any pixel is
 * decoded (decompression bombs); corrupt or truncated data fails; EXIF orientation is applied,
 * then every piece of metadata (EXIF, GPS, XMP, ICC, comments) is dropped; the image is resized
 * to a maximum edge and encoded (WebP or JPEG) with a thumbnail and a SHA-256 content hash.
 * A semaphore bounds how many images are processed at once (memory and CPU).
 *
 * The encoders run at their fastest settings (bench/README.md, Sessions pipeline, issue #17):
 * WebP effort 0 and JPEG without mozjpeg take a phone screenshot's normalisation from ~85 to ~52
 * and from ~80 to ~43 ms of CPU, for 25–30% more bytes and the same local OCR error rate; the
 * vision models bill an image by its pixels, not its bytes. The thumbnail is made from the encoded image (shrink-on-load: decoding a quarter of it),
 * which measured cheaper than resizing the full-size pixels a second time.
 *
 * A caller that needs the image before its thumbnail (the sessions pipeline: the vision call waits
 * for the image alone) asks for them apart, and asks for the thumbnail later (issue #17). Those
 * thumbnails have permits of their own: one needed at once does not queue behind waiting images.
 */
import { Context, Effect, Layer, Schema } from "effect"
import { createHash } from "node:crypto"
import type { Sharp } from "sharp"
import { AppConfig } from "../config.ts"

export class ImageError extends Schema.TaggedError<ImageError>()("ImageError", {
  reason: Schema.Literal("too-large", "unreadable"),
  message: Schema.String,
  details: Schema.optional(Schema.Unknown)
}) {}

export type OutputFormat = "webp" | "jpeg"

export interface ImageOptions {
  /** Longest edge of the normalised image, in pixels (never enlarged). */
  readonly maxEdge: number
  readonly thumbnailEdge: number
  /** Width × height above which an image is refused without being decoded. */
  readonly maxPixels: number
  readonly format: OutputFormat
  /** 1–100. */
  readonly quality: number
  /** Images processed at the same time. */
  readonly concurrency: number
  /** A single image taking longer fails (libvips stops working on it). */
  readonly timeoutSeconds?: number
  /** The resampling kernel of the resize to `maxEdge` (sharp's default: lanczos3). */
  readonly kernel?: ResizeKernel
}

export const RESIZE_KERNELS = ["nearest", "linear", "cubic", "mitchell", "lanczos2", "lanczos3"] as const
export type ResizeKernel = (typeof RESIZE_KERNELS)[number]

export interface EncodedImage {
  readonly bytes: Uint8Array
  readonly contentType: "image/webp" | "image/jpeg"
  readonly width: number
  readonly height: number
}

/** A normalised image without its thumbnail. */
export interface NormalizedOnly {
  readonly image: EncodedImage
  /** SHA-256 (hex) of the normalised image's bytes. */
  readonly contentHash: string
  /** What was decoded: format and size as stored (before orientation). */
  readonly source: { readonly format: string; readonly width: number; readonly height: number }
}

export interface NormalizedImage extends NormalizedOnly {
  readonly thumbnail: EncodedImage
}

export interface ImageProcessorShape {
  /** The normalised image and its thumbnail, made one after the other. */
  readonly normalize: (input: Uint8Array) => Effect.Effect<NormalizedImage, ImageError>
  /** The normalised image alone; its thumbnail from `thumbnailOf`. */
  readonly normalizeImage: (input: Uint8Array) => Effect.Effect<NormalizedOnly, ImageError>
  /** The thumbnail of an image `normalizeImage` made (permits of its own: see the header comment). */
  readonly thumbnailOf: (image: EncodedImage) => Effect.Effect<EncodedImage, ImageError>
}

const DECODABLE = new Set(["png", "jpeg", "webp"])

/** The encoder of `format`: WebP effort 0, JPEG (libjpeg-turbo) on white; see the header comment. */
export const encoderOf =
  (format: OutputFormat, quality: number) =>
  (pipeline: Sharp): Sharp =>
    format === "webp"
      ? pipeline.webp({ quality, effort: 0 })
      : pipeline.flatten({ background: "#ffffff" }).jpeg({ quality })

const unreadable = (cause: unknown) =>
  new ImageError({
    reason: "unreadable",
    message: "The image cannot be decoded: it is corrupt, truncated or not a PNG, JPEG or WebP image",
    details: { decoder: cause instanceof Error ? cause.message : String(cause) }
  })

export const makeImageProcessor = (options: ImageOptions) =>
  Effect.gen(function* () {
    const permits = yield* Effect.makeSemaphore(options.concurrency)
    const thumbnailPermits = yield* Effect.makeSemaphore(options.concurrency)
    const contentType = options.format === "webp" ? ("image/webp" as const) : ("image/jpeg" as const)
    const timeout = { seconds: options.timeoutSeconds ?? 30 }

    const encode = encoderOf(options.format, options.quality)

    const fit = (edge: number) => ({ width: edge, height: edge, fit: "inside" as const, withoutEnlargement: true })

    const run = <A>(work: () => Promise<A>) => Effect.tryPromise({ try: work, catch: unreadable })

    // sharp (libvips: ~30 MB resident) loads with the first image, not at boot: the api
    // normalises only profile screenshots and may never need it (issue #17).
    const loadSharp = yield* Effect.cached(Effect.orDie(Effect.tryPromise(() => import("sharp"))))

    const thumbnailNow = (image: EncodedImage) =>
      Effect.gen(function* () {
        const { default: sharp } = yield* loadSharp
        const thumbnail = yield* run(() =>
          encode(sharp(image.bytes).timeout(timeout).resize(fit(options.thumbnailEdge))).toBuffer({
            resolveWithObject: true
          })
        )
        return {
          bytes: thumbnail.data,
          contentType,
          width: thumbnail.info.width,
          height: thumbnail.info.height
        } satisfies EncodedImage
      })

    const normalizeNow = (input: Uint8Array) =>
      Effect.gen(function* () {
        const { default: sharp } = yield* loadSharp
        // The header alone: dimensions are known before anything is decoded.
        const header = yield* run(() => sharp(input).metadata())
        const { width, height, format } = header
        if (width === undefined || height === undefined || !DECODABLE.has(format)) {
          return yield* unreadable(new Error(`unsupported format ${format}`))
        }
        if (width * height > options.maxPixels) {
          return yield* new ImageError({
            reason: "too-large",
            message: `The image is ${width}×${height} pixels; at most ${options.maxPixels} pixels are accepted`,
            details: { width, height, maxPixels: options.maxPixels }
          })
        }
        const decoded = sharp(input, {
          // Also enforced by libvips itself, should the header lie.
          limitInputPixels: options.maxPixels,
          failOn: "truncated",
          sequentialRead: true
        }).timeout(timeout)
        // autoOrient applies the EXIF orientation; the output keeps no metadata at all (sharp's
        // default without keepMetadata/withMetadata): EXIF, GPS, XMP, IPTC and ICC are dropped.
        const image = yield* run(() =>
          encode(
            decoded.autoOrient().resize({ ...fit(options.maxEdge), kernel: options.kernel ?? "lanczos3" })
          ).toBuffer({ resolveWithObject: true })
        )
        return {
          image: { bytes: image.data, contentType, width: image.info.width, height: image.info.height },
          contentHash: createHash("sha256").update(image.data).digest("hex"),
          source: { format, width, height }
        } satisfies NormalizedOnly
      })

    return {
      normalize: (input: Uint8Array) =>
        permits
          .withPermits(1)(
            Effect.flatMap(normalizeNow(input), (normalized) =>
              Effect.map(thumbnailNow(normalized.image), (thumbnail) => ({ ...normalized, thumbnail }))
            )
          )
          .pipe(Effect.withSpan("ImageProcessor.normalize")),
      normalizeImage: (input: Uint8Array) =>
        permits.withPermits(1)(normalizeNow(input)).pipe(Effect.withSpan("ImageProcessor.normalizeImage")),
      thumbnailOf: (image: EncodedImage) =>
        thumbnailPermits.withPermits(1)(thumbnailNow(image)).pipe(Effect.withSpan("ImageProcessor.thumbnailOf"))
    } satisfies ImageProcessorShape
  })

export class ImageProcessor extends Context.Tag("ImageProcessor")<ImageProcessor, ImageProcessorShape>() {
  static fromOptions(options: ImageOptions): Layer.Layer<ImageProcessor> {
    return Layer.effect(ImageProcessor, makeImageProcessor(options))
  }

  /** Limits, size and format from the configuration (IMAGE_*). */
  static readonly layer: Layer.Layer<ImageProcessor, never, AppConfig> = Layer.unwrapEffect(
    Effect.map(AppConfig, (config) => ImageProcessor.fromOptions(config.images))
  )
}
