/** Finding a line's bubble on a small colour map. */
import { describe, expect, it } from "@effect/vitest"
import { type ColourMap, findBubble, pageColour } from "../../../../src/core/ocr/bubbles.ts"

type Rgb = readonly [number, number, number]

/** A white map with filled rectangles (map coordinates), `scale` page pixels per map pixel. */
const mapOf = (
  width: number,
  height: number,
  rects: ReadonlyArray<{ x0: number; y0: number; x1: number; y1: number; colour: Rgb }>,
  scale = 4
): ColourMap => {
  const data = new Uint8Array(width * height * 3).fill(255)
  for (const rect of rects) {
    for (let y = rect.y0; y < rect.y1; y++) {
      for (let x = rect.x0; x < rect.x1; x++) data.set(rect.colour, (y * width + x) * 3)
    }
  }
  return { data, width, height, scale }
}

const BLUE: Rgb = [11, 132, 255]
const BLACK: Rgb = [0, 0, 0]

describe("bubbles", () => {
  // A blue bubble from map (60, 20) to (240, 60), i.e. page (240, 80)–(960, 240), with "text" inside.
  const map = mapOf(250, 500, [
    { x0: 60, y0: 20, x1: 240, y1: 60, colour: BLUE },
    { x0: 70, y0: 25, x1: 200, y1: 35, colour: [255, 255, 255] },
    { x0: 70, y0: 40, x1: 150, y1: 50, colour: [255, 255, 255] }
  ])

  it("the page colour is the most common one", () => {
    expect(pageColour(map)).toEqual([255, 255, 255])
  })

  it("follows the bubble's colour around a line, whatever line of the bubble it starts from", () => {
    const first = findBubble(map, [255, 255, 255], { x0: 280, y0: 100, x1: 800, y1: 140 })
    const second = findBubble(map, [255, 255, 255], { x0: 280, y0: 160, x1: 600, y1: 200 })
    expect(first).toEqual({ x0: 240, y0: 80, x1: 960, y1: 240 })
    expect(second).toEqual(first)
  })

  it("a line on the page itself has no bubble", () => {
    const plain = mapOf(250, 500, [{ x0: 100, y0: 100, x1: 150, y1: 110, colour: BLACK }])
    expect(findBubble(plain, [255, 255, 255], { x0: 400, y0: 400, x1: 600, y1: 440 })).toBeUndefined()
  })
})
