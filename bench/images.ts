/**
 * Image normalisation throughput: ImageProcessor.normalize (header check, decode with the pixel
 * limit, EXIF orientation, metadata stripped, resize, encode, thumbnail, SHA-256, semaphore) next
 * to raw sharp resizing the same images to the same edge and format, in the same run: one image
 * at a time, then a burst at IMAGE_CONCURRENCY. Rounds alternate between the two so that drift
 * affects both alike. Prints a table and writes bench/results/images.json.
 *
 *   npm run bench:images     (BENCH_ROUNDS=5; the IMAGE_* settings as the server reads them)
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { availableParallelism } from "node:os"
import { Effect } from "effect"
import sharp from "sharp"
import { AppConfig } from "../src/core/config.ts"
import { makeImageProcessor } from "../src/core/image/image-processor.ts"
import { screenshotPng } from "../test/fixtures/images.ts"

const rounds = Number(process.env["BENCH_ROUNDS"] ?? "5")
const options = (await Effect.runPromise(Effect.provide(AppConfig, AppConfig.Default))).images
const concurrency = options.concurrency

/** Phone screenshots at common device sizes, as PNG (what iOS saves) and as JPEG. */
const devices: ReadonlyArray<readonly [number, number]> = [
  [750, 1334],
  [1080, 2400],
  [1170, 2532],
  [1290, 2796]
]
const images: Array<{ readonly name: string; readonly bytes: Buffer; readonly megapixels: number }> = []
for (const [width, height] of devices) {
  const png = await screenshotPng(width, height)
  images.push({ name: `${width}x${height}.png`, bytes: png, megapixels: (width * height) / 1e6 })
  const jpeg = await sharp(png).jpeg({ quality: 90 }).toBuffer()
  images.push({ name: `${width}x${height}.jpg`, bytes: jpeg, megapixels: (width * height) / 1e6 })
}

const rawResize = (input: Buffer) =>
  sharp(input)
    .resize({ width: options.maxEdge, height: options.maxEdge, fit: "inside", withoutEnlargement: true })
    .toFormat(options.format, { quality: options.quality })
    .toBuffer()

const processor = await Effect.runPromise(makeImageProcessor(options))
const normalize = (input: Buffer) => Effect.runPromise(processor.normalize(input))

/** Runs `work` over every image, `parallel` at a time; answers the elapsed milliseconds. */
const pass = async (work: (input: Buffer) => Promise<unknown>, parallel: number): Promise<number> => {
  const queue = [...images]
  const started = performance.now()
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) await work(next.bytes)
    })
  )
  return performance.now() - started
}

interface Row {
  readonly path: string
  readonly mode: string
  readonly images: number
  readonly imagesPerSecond: number
  readonly megapixelsPerSecond: number
  readonly msPerImage: number
}

const totalMegapixels = images.reduce((sum, image) => sum + image.megapixels, 0)
const row = (path: string, mode: string, totalMs: number): Row => {
  const count = images.length * rounds
  return {
    path,
    mode,
    images: count,
    imagesPerSecond: count / (totalMs / 1000),
    megapixelsPerSecond: (totalMegapixels * rounds) / (totalMs / 1000),
    msPerImage: totalMs / count
  }
}

const rows: Array<Row> = []
// Normalize's burst goes through its own semaphore: all images are submitted at once.
const modes = [
  { mode: "one at a time", raw: 1, normalized: 1 },
  { mode: `burst (concurrency ${concurrency})`, raw: concurrency, normalized: images.length }
]
for (const { mode, raw, normalized } of modes) {
  await pass(rawResize, raw) // warm-up
  await pass(normalize, normalized)
  let rawMs = 0
  let normalizedMs = 0
  for (let round = 0; round < rounds; round++) {
    rawMs += await pass(rawResize, raw)
    normalizedMs += await pass(normalize, normalized)
  }
  rows.push(
    row(`raw sharp resize → ${options.format}`, mode, rawMs),
    row("ImageProcessor.normalize", mode, normalizedMs)
  )
}

console.log(
  `\nImage normalisation (${process.version}, sharp ${sharp.versions.sharp}, libvips ${sharp.versions.vips}, ` +
    `${availableParallelism()} cores, ${images.length} screenshots × ${rounds} rounds, ${totalMegapixels.toFixed(1)} MP per round)\n`
)
console.log("| path | mode | images | images/s | MP/s | ms/image | throughput vs raw |")
console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for (const [index, current] of rows.entries()) {
  const raw = rows[index - (index % 2)] ?? current
  console.log(
    `| ${current.path} | ${current.mode} | ${current.images} | ${current.imagesPerSecond.toFixed(1)} | ` +
      `${current.megapixelsPerSecond.toFixed(1)} | ${current.msPerImage.toFixed(1)} | ` +
      `${(current.imagesPerSecond / raw.imagesPerSecond).toFixed(2)}× |`
  )
}
mkdirSync("bench/results", { recursive: true })
writeFileSync(
  "bench/results/images.json",
  JSON.stringify(
    {
      at: new Date().toISOString(),
      node: process.version,
      sharp: sharp.versions.sharp,
      options,
      images: images.map(({ name, bytes }) => ({ name, bytes: bytes.length })),
      rows
    },
    null,
    2
  )
)
