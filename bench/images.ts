/**
 * Image normalisation throughput: ImageProcessor.normalize (header check, decode with the pixel
 * limit, EXIF orientation, metadata stripped, resize, encode, thumbnail, SHA-256, semaphore) next
 * to raw sharp resizing the same images to the same edge and format, in the same run: one image
 * at a time, then a burst at IMAGE_CONCURRENCY. Rounds alternate between the two so that drift
 * affects both alike. Prints a table and writes bench/results/images.json.
 *
 *   npm run bench:images     (BENCH_ROUNDS=5; the IMAGE_* settings as the server reads them)
 *   npm run bench:images -- --formats   (WebP efforts and JPEG encoders: CPU, bytes, local OCR
 *                                        error rate; writes bench/results/image-formats.json)
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { availableParallelism, loadavg } from "node:os"
import { Effect } from "effect"
import sharp, { type Sharp } from "sharp"
import { AppConfig } from "../src/core/config.ts"
import { encoderOf, makeImageProcessor } from "../src/core/image/image-processor.ts"
import { LocalOcr } from "../src/core/ocr/local.ts"
import { assertFontsRender, chatScreenshotPng, DEFAULT_CHAT } from "../test/fixtures/chat-screenshot.ts"
import { editDistance } from "../test/integration/ocr/transcript-match.ts"
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
// ---------------------------------------------------------------------------------------------
// `--formats`: which output format and effort, by measurement. Each setting encodes the same chat
// screenshots (known text, two font sizes, four phone sizes) the way normalize does (decode,
// orient, resize to IMAGE_MAX_EDGE, encode), then a thumbnail from that output as normalize makes
// it. Measured per image: process CPU (user + system, libvips threads included) of the main
// encode and of the thumbnail, bytes, and the local OCR's character error rate against the text
// drawn (src/core/ocr local reader, tesseract): the same transcript the fallback would read.
// Vision tokens depend on pixels, not bytes (see bench/README.md), so they are the same for every
// setting at the same edge.

const plain = (text: string) => text.replace(/\s+/g, " ").trim()

interface FormatSetting {
  readonly name: string
  readonly contentType: "image/webp" | "image/jpeg"
  readonly encode: (pipeline: Sharp) => Sharp
}
const quality = options.quality
const settings: ReadonlyArray<FormatSetting> = [
  {
    name: `WebP q${quality} effort 4 (sharp's default)`,
    contentType: "image/webp",
    encode: (p) => p.webp({ quality })
  },
  { name: `WebP q${quality} effort 2`, contentType: "image/webp", encode: (p) => p.webp({ quality, effort: 2 }) },
  { name: `WebP q${quality} effort 0`, contentType: "image/webp", encode: (p) => p.webp({ quality, effort: 0 }) },
  {
    name: `JPEG q${quality} mozjpeg`,
    contentType: "image/jpeg",
    encode: (p) => p.flatten({ background: "#ffffff" }).jpeg({ quality, mozjpeg: true })
  },
  {
    name: `JPEG q${quality} libjpeg-turbo`,
    contentType: "image/jpeg",
    encode: (p) => p.flatten({ background: "#ffffff" }).jpeg({ quality })
  }
]

const fit = (edge: number) => ({ width: edge, height: edge, fit: "inside" as const, withoutEnlargement: true })
const cpuMs = () => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

const runFormats = async () => {
  await assertFontsRender()
  const expected = plain(DEFAULT_CHAT.map((message) => message.text).join(" "))
  const corpus: Array<{ readonly name: string; readonly bytes: Buffer }> = []
  for (const [width, height] of devices) {
    for (const font of [44, 32]) {
      const fontSize = Math.round((font * width) / 1170)
      corpus.push({ name: `${width}x${height} ${font}px`, bytes: await chatScreenshotPng({ width, height, fontSize }) })
    }
  }
  const main = (setting: FormatSetting, input: Buffer) =>
    setting
      .encode(sharp(input, { sequentialRead: true }).autoOrient().resize(fit(options.maxEdge)))
      .toBuffer({ resolveWithObject: true })
  const thumbnail = (setting: FormatSetting, image: Buffer) =>
    setting.encode(sharp(image).resize(fit(options.thumbnailEdge))).toBuffer()

  const cpu = new Map<string, { main: number; thumbnail: number }>(
    settings.map((s) => [s.name, { main: 0, thumbnail: 0 }])
  )
  const outputs = new Map<string, Array<{ bytes: Buffer; width: number; height: number; thumbnailBytes: number }>>()
  for (const setting of settings)
    for (const input of corpus) await thumbnail(setting, (await main(setting, input.bytes)).data) // warm-up
  // Settings interleaved within each round: drift of the machine's load touches all alike.
  for (let round = 0; round < rounds; round++) {
    for (const setting of settings) {
      const spent = cpu.get(setting.name) ?? { main: 0, thumbnail: 0 }
      const made: Array<{ bytes: Buffer; width: number; height: number; thumbnailBytes: number }> = []
      for (const input of corpus) {
        const started = cpuMs()
        const image = await main(setting, input.bytes)
        const encoded = cpuMs()
        const small = await thumbnail(setting, image.data)
        spent.main += encoded - started
        spent.thumbnail += cpuMs() - encoded
        made.push({
          bytes: image.data,
          width: image.info.width,
          height: image.info.height,
          thumbnailBytes: small.length
        })
      }
      cpu.set(setting.name, spent)
      outputs.set(setting.name, made)
    }
  }

  // Local OCR of every output (after the timing: tesseract's threads would count in the CPU).
  const results = await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const ocr = yield* LocalOcr.make({ workers: 1 })
        const rows = []
        for (const setting of settings) {
          let errors = 0
          let characters = 0
          for (const output of outputs.get(setting.name) ?? []) {
            const transcript = yield* Effect.either(ocr.read({ bytes: output.bytes, mimeType: setting.contentType }))
            const read =
              transcript._tag === "Right" ? plain(transcript.right.messages.map((m) => m.text).join(" ")) : ""
            errors += editDistance(read, expected)
            characters += expected.length
          }
          const made = outputs.get(setting.name) ?? []
          const spent = cpu.get(setting.name) ?? { main: 0, thumbnail: 0 }
          const count = corpus.length * rounds
          rows.push({
            setting: setting.name,
            mainCpuMs: spent.main / count,
            thumbnailCpuMs: spent.thumbnail / count,
            kib: made.reduce((sum, output) => sum + output.bytes.length, 0) / made.length / 1024,
            thumbnailKib: made.reduce((sum, output) => sum + output.thumbnailBytes, 0) / made.length / 1024,
            megapixels: made.reduce((sum, output) => sum + output.width * output.height, 0) / made.length / 1e6,
            cer: errors / characters
          })
        }
        return rows
      })
    )
  )
  console.log(
    `\nOutput format (${process.version}, sharp ${sharp.versions.sharp}, libvips ${sharp.versions.vips}, load ` +
      `${loadavg()
        .map((load) => load.toFixed(2))
        .join(" ")}; ${corpus.length} chat screenshots (4 phone sizes × 44 and 32 px text) × ${rounds} rounds, ` +
      `IMAGE_MAX_EDGE ${options.maxEdge}, thumbnail ${options.thumbnailEdge})\n`
  )
  console.log(
    "| setting | CPU ms/image: decode + resize + encode | thumbnail CPU ms | KiB | thumbnail KiB | MP | local OCR CER |"
  )
  console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
  for (const row of results) {
    console.log(
      `| ${row.setting} | ${row.mainCpuMs.toFixed(1)} | ${row.thumbnailCpuMs.toFixed(1)} | ${row.kib.toFixed(1)} | ` +
        `${row.thumbnailKib.toFixed(1)} | ${row.megapixels.toFixed(2)} | ${(row.cer * 100).toFixed(2)}% |`
    )
  }
  mkdirSync("bench/results", { recursive: true })
  writeFileSync(
    "bench/results/image-formats.json",
    JSON.stringify({ at: new Date().toISOString(), load: loadavg(), options, rounds, rows: results }, null, 2)
  )
}

if (process.argv.includes("--formats")) {
  await runFormats()
  process.exit(0)
}

const images: Array<{ readonly name: string; readonly bytes: Buffer; readonly megapixels: number }> = []
for (const [width, height] of devices) {
  const png = await screenshotPng(width, height)
  images.push({ name: `${width}x${height}.png`, bytes: png, megapixels: (width * height) / 1e6 })
  const jpeg = await sharp(png).jpeg({ quality: 90 }).toBuffer()
  images.push({ name: `${width}x${height}.jpg`, bytes: jpeg, megapixels: (width * height) / 1e6 })
}

/** The same edge and encoder settings as ImageProcessor (see encoderOf). */
const rawResize = (input: Buffer) =>
  encoderOf(
    options.format,
    options.quality
  )(
    sharp(input).resize({ width: options.maxEdge, height: options.maxEdge, fit: "inside", withoutEnlargement: true })
  ).toBuffer()

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
