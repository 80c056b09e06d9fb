/**
 * How many leading messages of a screenshot repeat the end of what was read before it, when a
 * user scrolls and takes the next screenshot: the end of the transcript so far and the start of
 * the next one are aligned, messages matching when their senders are the same and their texts
 * nearly so (normalised edit distance: OCR reads the same bubble slightly differently twice).
 * One line on either side may have no counterpart (a header line read as a message, a message
 * cut at the screen's edge and not read): an overlap is then accepted when at least two
 * messages match around it, or one message of a sentence's length. Of all the alignments, the one with most matches wins (then fewest
 * unmatched lines, then the longer prefix, so a spurious first line goes with the overlap).
 */

export interface AlignableMessage {
  readonly sender: string
  readonly text: string
}

const loose = (text: string) =>
  text
    .toLowerCase()
    .normalize("NFC")
    .replace(/[^\p{L}\p{N}]+/gu, " ")
    .trim()

/** Levenshtein distance (by UTF-16 unit). */
export const editDistance = (a: string, b: string): number => {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        (previous[j] ?? 0) + 1,
        (current[j - 1] ?? 0) + 1,
        (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1)
      )
    }
    previous = current
  }
  return previous[b.length] ?? 0
}

/** 1 for equal texts (case, punctuation and spacing aside), 0 for nothing in common. */
export const textSimilarity = (a: string, b: string): number => {
  const x = loose(a)
  const y = loose(b)
  const longest = Math.max(x.length, y.length)
  return longest === 0 ? 1 : 1 - editDistance(x, y) / longest
}

/** Two readings of one message are at least this similar. */
const SAME_MESSAGE = 0.8

const sameMessage = (a: AlignableMessage, b: AlignableMessage) =>
  a.sender === b.sender && textSimilarity(a.text, b.text) >= SAME_MESSAGE

/** The most pairs of matching messages in order (longest common subsequence). */
const matches = (a: ReadonlyArray<AlignableMessage>, b: ReadonlyArray<AlignableMessage>): number => {
  let previous = Array<number>(b.length + 1).fill(0)
  for (const x of a) {
    const current = [0]
    b.forEach((y, j) => {
      current[j + 1] = sameMessage(x, y) ? (previous[j] ?? 0) + 1 : Math.max(previous[j + 1] ?? 0, current[j] ?? 0)
    })
    previous = current
  }
  return previous[b.length] ?? 0
}

/** A single match beside a gap is trusted only for a message this long (a sentence, not "ok"). */
const LONG = 15

const longMatch = (tail: ReadonlyArray<AlignableMessage>, head: ReadonlyArray<AlignableMessage>) =>
  head.some((y) => loose(y.text).length >= LONG && tail.some((x) => sameMessage(x, y)))

/** The number of leading messages of `next` already in `merged` (its end), 0 when none. */
export const overlapLength = (
  merged: ReadonlyArray<AlignableMessage>,
  next: ReadonlyArray<AlignableMessage>
): number => {
  let best = { length: 0, matched: 0, gaps: 0 }
  for (let length = 1; length <= next.length; length++) {
    const head = next.slice(0, length)
    for (let tail = Math.max(1, length - 1); tail <= Math.min(merged.length, length + 1); tail++) {
      const end = merged.slice(merged.length - tail)
      const matched = matches(end, head)
      const gaps = tail - matched + (length - matched)
      if (matched === 0 || gaps > 1 || (gaps === 1 && matched < 2 && !longMatch(end, head))) continue
      const better =
        matched > best.matched ||
        (matched === best.matched && gaps < best.gaps) ||
        (matched === best.matched && gaps === best.gaps && length > best.length)
      if (better) best = { length, matched, gaps }
    }
  }
  return best.length
}
