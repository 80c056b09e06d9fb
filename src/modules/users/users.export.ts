/**
 * The account's data export (GDPR Art. 15 access, Art. 20 portability): the rows `UsersRepo.exportRows`
 * read (one query per table, each bounded) as the `UserExport` contract. Only the owner's rows are
 * ever read; nothing of the storage (keys, signing secrets) and no prompt is exported.
 */
import type { ExportedSession, ExportKind, UserExport } from "../../domain/users.ts"
import { toMatchView } from "../matches/matches.service.ts"
import { toOpenerView } from "../openers/openers.service.ts"
import { summaryOf } from "../sessions/sessions.service.ts"
import { timingsOf, toMessage, toSuggestion } from "../sessions/sessions.views.ts"

/** `rows` grouped by their `sessionId`, each group in the order `compare` gives. */
const bySession = <A extends { readonly sessionId: string }>(
  rows: ReadonlyArray<A>,
  compare: (a: A, b: A) => number
): ReadonlyMap<string, ReadonlyArray<A>> => {
  const groups = new Map<string, Array<A>>()
  for (const row of rows) {
    const group = groups.get(row.sessionId)
    if (group === undefined) groups.set(row.sessionId, [row])
    else group.push(row)
  }
  for (const group of groups.values()) group.sort(compare)
  return groups
}

/** The export from the rows read (each list one past its bound at most), newest first. */
export const toExport = (
  bounds: Readonly<Record<ExportKind, number>>,
  exportedAt: Date,
  profile: UserExport["profile"],
  rows: {
    readonly matches: ReadonlyArray<Parameters<typeof toMatchView>[0]>
    readonly openers: ReadonlyArray<Parameters<typeof toOpenerView>[0]>
    readonly sessions: ReadonlyArray<
      Parameters<typeof summaryOf>[0] & {
        readonly context: string | null
        readonly costMicros: number
        readonly timings: unknown
        readonly _count: { readonly images: number }
      }
    >
    readonly messages: ReadonlyArray<
      Parameters<typeof toMessage>[0] & { readonly sessionId: string; readonly position: number }
    >
    readonly suggestions: ReadonlyArray<Parameters<typeof toSuggestion>[0] & { readonly sessionId: string }>
    readonly aiUsage: ReadonlyArray<UserExport["aiUsage"][number]>
  }
): UserExport => {
  // At most `bound` rows; the kind is named when more were there (the query took one more).
  const bounded = <A>(rows: ReadonlyArray<A>, kind: ExportKind) => ({
    rows: rows.slice(0, bounds[kind]),
    cut: rows.length > bounds[kind] ? [kind] : []
  })
  const matches = bounded(rows.matches, "matches")
  const openers = bounded(rows.openers, "openers")
  const sessions = bounded(rows.sessions, "sessions")
  const messages = bounded(rows.messages, "transcriptMessages")
  const suggestions = bounded(rows.suggestions, "suggestions")
  const aiUsage = bounded(rows.aiUsage, "aiUsage")
  const transcripts = bySession(messages.rows, (a, b) => a.position - b.position)
  const batches = bySession(suggestions.rows, (a, b) => a.batch - b.batch || a.position - b.position)
  return {
    exportedAt,
    profile,
    matches: matches.rows.map(toMatchView),
    openers: openers.rows.map(toOpenerView),
    sessions: sessions.rows.map((session): ExportedSession => ({
      ...summaryOf(session, session._count.images),
      costMicros: session.costMicros,
      timings: timingsOf(session.timings),
      context: session.context,
      transcript: (transcripts.get(session.id) ?? []).map(toMessage),
      suggestions: (batches.get(session.id) ?? []).map(toSuggestion)
    })),
    aiUsage: aiUsage.rows,
    truncated: [...matches.cut, ...openers.cut, ...sessions.cut, ...messages.cut, ...suggestions.cut, ...aiUsage.cut]
  }
}
