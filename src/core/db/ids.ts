/**
 * Primary keys made here, for rows written by raw SQL (Prisma's `@default(cuid())` only applies
 * to its own writes): lowercase letters and digits like a cuid, so they pass `ResourceId`, with
 * the time first and 80 random bits after it.
 */
import { randomBytes } from "node:crypto"

export const newId = (): string => `c${Date.now().toString(36)}${randomBytes(10).toString("hex")}`
