/**
 * Merging the transcripts of consecutive screenshots of one conversation: screenshots scrolled
 * by the user overlap, so the messages at the top of image n + 1 repeat those at the bottom of
 * image n. The longest leading run of image n + 1 equal to a trailing run of what is merged so
 * far is dropped. Messages are equal when their sender and normalised text are.
 */
export interface MergeableMessage {
  readonly sender: string
  readonly text: string
}

const normalise = (text: string) =>
  text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, " ")
    .trim()

const same = (a: MergeableMessage, b: MergeableMessage) =>
  a.sender === b.sender && normalise(a.text) === normalise(b.text)

/** The length of the longest prefix of `next` that equals a suffix of `merged`. */
export const overlap = (merged: ReadonlyArray<MergeableMessage>, next: ReadonlyArray<MergeableMessage>): number => {
  for (let length = Math.min(merged.length, next.length); length > 0; length--) {
    const start = merged.length - length
    let equal = true
    for (let i = 0; i < length && equal; i++) {
      const a = merged[start + i]
      const b = next[i]
      equal = a !== undefined && b !== undefined && same(a, b)
    }
    if (equal) return length
  }
  return 0
}

export const mergeTranscripts = <M extends MergeableMessage>(images: ReadonlyArray<ReadonlyArray<M>>): Array<M> => {
  const merged: Array<M> = []
  for (const messages of images) merged.push(...messages.slice(overlap(merged, messages)))
  return merged
}
