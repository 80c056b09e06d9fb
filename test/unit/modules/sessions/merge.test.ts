import { describe, expect, it } from "vitest"
import { mergeTranscripts, overlap } from "../../../../src/modules/sessions/merge.ts"
import { declined } from "../../../../src/modules/sessions/prompts/suggestions-v1.ts"

const them = (text: string) => ({ sender: "them", text })
const me = (text: string) => ({ sender: "me", text })

describe("merging consecutive screenshots", () => {
  it("drops the leading run of the next image equal to the trailing run so far", () => {
    const first = [them("Hi"), me("Hey!"), them("How are you?"), me("Good, you?")]
    const second = [them("How are you?"), me("Good, you?"), them("Great"), me("Nice")]
    expect(overlap(first, second)).toBe(2)
    expect(mergeTranscripts([first, second]).map((m) => m.text)).toEqual([
      "Hi",
      "Hey!",
      "How are you?",
      "Good, you?",
      "Great",
      "Nice"
    ])
  })

  it("compares sender and normalised text; no overlap keeps everything; three images chain", () => {
    expect(overlap([me("ok")], [them("ok")])).toBe(0)
    expect(overlap([me("See you at 8!")], [me("see you at 8")])).toBe(1)
    const merged = mergeTranscripts([[them("a")], [them("a"), me("b")], [me("b"), them("c")]])
    expect(merged.map((m) => m.text)).toEqual(["a", "b", "c"])
    expect(mergeTranscripts([[them("x")], [me("y")]])).toHaveLength(2)
  })

  it("a message repeated inside a screenshot stays (only the boundary overlap goes)", () => {
    const merged = mergeTranscripts([[them("lol"), me("lol")], [them("new")]])
    expect(merged).toHaveLength(3)
  })
})

describe("declined", () => {
  it("sees the other person saying no, not the user", () => {
    expect(declined([them("Sorry, I'm not interested")])).toBe(true)
    expect(declined([them("please stop texting me")])).toBe(true)
    expect(declined([me("not interested in football")])).toBe(false)
    expect(declined([them("I would love that")])).toBe(false)
  })
})
