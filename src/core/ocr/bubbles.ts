/**
 * Finds the chat bubble around a line of text, on a small colour map of the screenshot (a
 * quarter of its size): the bubble's colour is sampled just left of the line (in the bubble's
 * padding, where no text is), then the area of that colour is followed left, right, up and
 * down from there. A line on the page itself (its colour is the page's) has no bubble.
 * Text's own pixels never take part: scans start outside the line's box and run along the
 * bubble's padding.
 */
import type { Box } from "./layout.ts"

export interface ColourMap {
  /** RGB, row-major, 3 bytes per pixel. */
  readonly data: Uint8Array
  readonly width: number
  readonly height: number
  /** Page pixels per map pixel. */
  readonly scale: number
}

type Rgb = readonly [number, number, number]

/** Largest per-channel difference still counted as the same flat colour. */
const TOLERANCE = 20

const at = (map: ColourMap, x: number, y: number): Rgb | undefined => {
  const column = Math.round(x)
  const row = Math.round(y)
  if (column < 0 || row < 0 || column >= map.width || row >= map.height) return undefined
  const index = (row * map.width + column) * 3
  return [map.data[index] ?? 0, map.data[index + 1] ?? 0, map.data[index + 2] ?? 0]
}

const distance = (a: Rgb, b: Rgb) => Math.max(Math.abs(a[0] - b[0]), Math.abs(a[1] - b[1]), Math.abs(a[2] - b[2]))

const same = (map: ColourMap, x: number, y: number, colour: Rgb, tolerance = TOLERANCE) => {
  const found = at(map, x, y)
  return found !== undefined && distance(found, colour) <= tolerance
}

/** A bubble differs from the page by at least this much (light grey bubbles on white: ~16). */
const MIN_CONTRAST = 8

/**
 * The page's colour: the most common colour (quantised to 16 levels per channel, then averaged)
 * of the strips along the left and right edges, between header and input bar. Bubbles keep a
 * margin from the screen's edges, and may cover more of the screen than the page itself.
 */
export const pageColour = (map: ColourMap): Rgb => {
  const counts = new Map<number, { n: number; r: number; g: number; b: number }>()
  const strip = Math.max(1, Math.floor(map.width * 0.025))
  const indexes: Array<number> = []
  for (let row = Math.floor(map.height * 0.15); row < Math.floor(map.height * 0.85); row++) {
    for (let column = 0; column < strip; column++) {
      indexes.push((row * map.width + column) * 3, (row * map.width + map.width - 1 - column) * 3)
    }
  }
  for (const index of indexes) {
    if (index + 2 >= map.data.length) continue
    const r = map.data[index] ?? 0
    const g = map.data[index + 1] ?? 0
    const b = map.data[index + 2] ?? 0
    const key = ((r >> 4) << 8) | ((g >> 4) << 4) | (b >> 4)
    const bin = counts.get(key) ?? { n: 0, r: 0, g: 0, b: 0 }
    counts.set(key, { n: bin.n + 1, r: bin.r + r, g: bin.g + g, b: bin.b + b })
  }
  let best = { n: 0, r: 255, g: 255, b: 255 }
  for (const bin of counts.values()) if (bin.n > best.n) best = bin
  return best.n === 0 ? [255, 255, 255] : [best.r / best.n, best.g / best.n, best.b / best.n]
}

/** The bubble around `line` (page coordinates), or undefined when the line sits on the page. */
export const findBubble = (map: ColourMap, page: Rgb, line: Box): Box | undefined => {
  const inset = Math.max(2, 0.3 * (line.y1 - line.y0))
  const startX = (line.x0 - inset) / map.scale
  const startY = (line.y0 + line.y1) / 2 / map.scale
  const colour = at(map, startX, startY)
  if (colour === undefined) return undefined
  const contrast = distance(colour, page)
  if (contrast < MIN_CONTRAST) return undefined
  // Close to the page's colour, the area is followed with less tolerance so as not to run onto the page.
  const tolerance = Math.min(TOLERANCE, Math.max(3, contrast / 2))
  const like = (x: number, y: number) => same(map, x, y, colour, tolerance)
  let left = Math.round(startX)
  while (like(left - 1, startY)) left -= 1
  let right = Math.round((line.x1 + inset) / map.scale)
  if (like(right, startY)) while (like(right + 1, startY)) right += 1
  let top = Math.round(startY)
  while (like(startX, top - 1)) top -= 1
  let bottom = Math.round(startY)
  while (like(startX, bottom + 1)) bottom += 1
  return {
    x0: left * map.scale,
    y0: top * map.scale,
    x1: (right + 1) * map.scale,
    y1: (bottom + 1) * map.scale
  }
}
