/**
 * Prepares a screenshot for the local OCR engine: dark text on a white page, whatever the
 * bubbles' colours. Chat apps draw the owner's messages as white text on coloured bubbles,
 * which a page-wide threshold turns into black blocks the engine cannot read; so each pixel is
 * compared with its local background (a median filter wide enough to erase text strokes but
 * to keep bubbles), and the difference, inverted, becomes the page: text of either polarity
 * turns dark, flat areas (page, bubbles) turn white. The image is first brought to about
 * 900 px wide (small ones enlarged, phone-sized ones slightly reduced).
 */
import { Effect } from "effect"
import sharp from "sharp"
import type { ColourMap } from "./bubbles.ts"
import { OcrFailed } from "./errors.ts"

export interface PreparedImage {
  /** A greyscale PNG, dark text on white. */
  readonly png: Buffer
  readonly width: number
  readonly height: number
  /** The upright image in colour at a quarter of the PNG's size, for finding bubbles. */
  readonly colours: ColourMap
}

/**
 * Screenshots are brought to about this width: phone text is then ~30–40 px high, which the
 * engine reads well, and fewer pixels are read faster (a 1170×2532 screenshot: ~40% fewer).
 */
const TARGET_WIDTH = 900
const MAX_UPSCALE = 3
const MIN_SCALE = 0.75
const MAP_SCALE = 4
/** The median window is the width divided by this (at half size). */
const BACKGROUND_WINDOW = 100
/**
 * Differences up to FLOOR turn white: the anti-aliased rims of bubbles differ from their
 * surroundings by at most half the bubble's contrast, text (even grey captions) by far more.
 * From FLOOR to FLOOR + RAMP the page goes from white to black.
 */
const FLOOR = 40
const RAMP = 80

const unreadable = (cause: unknown) =>
  new OcrFailed({
    reason: "unreadable-image",
    message: `The image cannot be decoded${cause instanceof Error ? `: ${cause.message.slice(0, 200)}` : ""}`
  })

const raw = (data: Buffer, width: number, height: number) => sharp(data, { raw: { width, height, channels: 1 } })

export const prepareForOcr = (bytes: Uint8Array, options: { readonly maxPixels: number }) =>
  Effect.gen(function* () {
    const run = <A>(work: () => Promise<A>) => Effect.tryPromise({ try: work, catch: unreadable })
    const header = yield* run(() => sharp(bytes).metadata())
    if (header.width === undefined || header.height === undefined) return yield* unreadable(undefined)
    if (header.width * header.height > options.maxPixels) {
      return yield* new OcrFailed({
        reason: "unreadable-image",
        message: `The image is ${header.width}×${header.height} pixels; at most ${options.maxPixels} are read`
      })
    }
    // EXIF orientations 5–8 turn the image a quarter: its upright width is the stored height.
    const uprightWidth = (header.orientation ?? 1) >= 5 ? header.height : header.width
    const scale = Math.min(MAX_UPSCALE, Math.max(MIN_SCALE, TARGET_WIDTH / uprightWidth))
    // Decoded once, upright, without alpha, at the working size.
    const rgb = yield* run(() => {
      const decoded = sharp(bytes, { limitInputPixels: options.maxPixels, failOn: "truncated" })
        .timeout({ seconds: 20 })
        .autoOrient()
        .flatten({ background: "#ffffff" })
      return (scale === 1 ? decoded : decoded.resize({ width: Math.round(uprightWidth * scale) }))
        .toColourspace("srgb")
        .raw()
        .toBuffer({ resolveWithObject: true })
    })
    const { width, height, channels } = rgb.info
    if (channels !== 3) return yield* unreadable(new Error(`expected RGB, got ${channels} channels`))
    const colour = () => sharp(rgb.data, { raw: { width, height, channels: 3 } })
    const grey = yield* run(() => colour().greyscale().toColourspace("b-w").raw().toBuffer())
    // The background is estimated at half size (four times fewer pixels for the median), with a
    // window of about half a text line at phone resolution: wider than any stroke, narrower
    // than a bubble; then brought back to full size.
    const halfWidth = Math.max(1, Math.round(width / 2))
    const halfHeight = Math.max(1, Math.round(height / 2))
    const window = Math.max(3, Math.round(width / BACKGROUND_WINDOW) | 1)
    const small = yield* run(() =>
      raw(grey, width, height)
        .resize({ width: halfWidth, height: halfHeight, kernel: "nearest" })
        .toColourspace("b-w")
        .raw()
        .toBuffer()
    )
    const smallBackground = yield* run(() =>
      raw(small, halfWidth, halfHeight).median(window).toColourspace("b-w").raw().toBuffer()
    )
    const background = yield* run(() =>
      raw(smallBackground, halfWidth, halfHeight)
        .resize({ width, height, kernel: "nearest" })
        .toColourspace("b-w")
        .raw()
        .toBuffer()
    )
    if (background.length !== grey.length || grey.length !== width * height)
      return yield* unreadable(new Error("background size mismatch"))
    const page = Buffer.allocUnsafe(grey.length)
    for (let index = 0; index < page.length; index++) {
      const difference = Math.abs((grey[index] ?? 0) - (background[index] ?? 0))
      page[index] = 255 - Math.min(255, Math.max(0, ((difference - FLOOR) * 255) / RAMP))
    }
    // A 3×3 median erases what is left of bubble rims (lines one pixel wide); strokes stay.
    const png = yield* run(() => raw(page, width, height).median(3).png({ compressionLevel: 1 }).toBuffer())
    const map = yield* run(() =>
      colour()
        // Nearest neighbour: no blending of text into the padding next to it.
        .resize({ width: Math.max(1, Math.round(width / MAP_SCALE)), kernel: "nearest" })
        .raw()
        .toBuffer({ resolveWithObject: true })
    )
    const colours: ColourMap = {
      data: map.data,
      width: map.info.width,
      height: map.info.height,
      scale: width / map.info.width
    }
    return { png, width, height, colours } satisfies PreparedImage
  })
