/**
 * Merging the transcripts of consecutive screenshots of one conversation: screenshots scrolled
 * by the user overlap, so the messages at the top of image n + 1 repeat those at the bottom of
 * image n. The leading messages of image n + 1 that align with the end of what is merged so far
 * are dropped: same sender, nearly the same text, one line on either side allowed to have no
 * counterpart (src/core/ocr/overlap.ts).
 */
import { overlapLength } from "../../core/ocr/overlap.ts"

export interface MergeableMessage {
  readonly sender: string
  readonly text: string
}

/** How many leading messages of `next` repeat the end of `merged`: aligned, tolerant to OCR noise (see overlap.ts). */
export const overlap = (merged: ReadonlyArray<MergeableMessage>, next: ReadonlyArray<MergeableMessage>): number =>
  overlapLength(merged, next)

export const mergeTranscripts = <M extends MergeableMessage>(images: ReadonlyArray<ReadonlyArray<M>>): Array<M> => {
  const merged: Array<M> = []
  for (const messages of images) merged.push(...messages.slice(overlap(merged, messages)))
  return merged
}
