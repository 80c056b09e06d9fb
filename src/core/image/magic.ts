/** What the first bytes of a file say it is: the image formats the server accepts, by signature. */
import type { AcceptedImageType } from "../../domain/uploads.ts"

/** Bytes enough to tell PNG, JPEG and WebP apart. */
export const MAGIC_BYTES = 12

const startsWith = (bytes: Uint8Array, offset: number, signature: ReadonlyArray<number>) =>
  bytes.length >= offset + signature.length && signature.every((byte, index) => bytes[offset + index] === byte)

const PNG = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]
const JPEG = [0xff, 0xd8, 0xff]
const RIFF = [0x52, 0x49, 0x46, 0x46]
const WEBP = [0x57, 0x45, 0x42, 0x50]

/** The image type the bytes start like, or undefined for anything else. */
export const detectImageType = (bytes: Uint8Array): AcceptedImageType | undefined => {
  if (startsWith(bytes, 0, PNG)) return "image/png"
  if (startsWith(bytes, 0, JPEG)) return "image/jpeg"
  if (startsWith(bytes, 0, RIFF) && startsWith(bytes, 8, WEBP)) return "image/webp"
  return undefined
}
