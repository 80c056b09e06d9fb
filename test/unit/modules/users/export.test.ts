import { describe, expect, it } from "vitest"
import { EXPORT_BOUNDS } from "../../../../src/domain/users.ts"
import { toExport } from "../../../../src/modules/users/users.export.ts"

const at = new Date("2026-01-02T03:04:05Z")
const profile = {
  id: "u1",
  email: null,
  firstName: null,
  lastName: null,
  imageUrl: null,
  preferredLanguage: null,
  defaultTone: null,
  createdAt: at,
  updatedAt: at
}
const session = (id: string) => ({
  id,
  matchId: null,
  status: "completed" as const,
  phase: null,
  errorCode: null,
  tone: "witty",
  language: "en",
  context: null,
  costMicros: 1380,
  timings: { ocr: 12 },
  createdAt: at,
  completedAt: at,
  _count: { images: 1 }
})
const message = (sessionId: string, position: number) => ({
  sessionId,
  position,
  sender: "them",
  text: `${sessionId}#${position}`,
  time: null,
  confidence: 1
})
const usage = (feature: string) => ({
  feature,
  provider: "local",
  model: "local-1",
  inputTokens: 1,
  outputTokens: 1,
  costMicros: 0,
  latencyMs: 1,
  outcome: "ok",
  createdAt: at
})
const empty = { matches: [], openers: [], sessions: [], messages: [], suggestions: [], aiUsage: [] }

describe("the data export", () => {
  it("groups each session's transcript in order, whatever order the rows came in", () => {
    const exported = toExport(EXPORT_BOUNDS, at, profile, {
      ...empty,
      sessions: [session("s2"), session("s1")],
      messages: [message("s1", 1), message("s2", 0), message("s1", 0)]
    })
    expect(exported.sessions.map((s) => [s.id, s.imageCount, s.transcript.map((m) => m.text)])).toEqual([
      ["s2", 1, ["s2#0"]],
      ["s1", 1, ["s1#0", "s1#1"]]
    ])
    expect(exported.sessions[0]).toMatchObject({ costMicros: 1380, timings: { ocr: 12 } })
    expect(exported.truncated).toEqual([])
  })

  it("keeps at most each kind's bound (the newest, given first) and names the kinds cut", () => {
    const bounds = { ...EXPORT_BOUNDS, sessions: 1, aiUsage: 2 }
    const exported = toExport(bounds, at, profile, {
      ...empty,
      sessions: [session("new"), session("old")],
      messages: [message("new", 0), message("old", 0)],
      aiUsage: [usage("a"), usage("b"), usage("c")]
    })
    expect(exported.sessions.map((s) => s.id)).toEqual(["new"])
    expect(exported.aiUsage.map((u) => u.feature)).toEqual(["a", "b"])
    expect(exported.truncated).toEqual(["sessions", "aiUsage"])
  })
})
