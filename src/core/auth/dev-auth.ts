/**
 * Dev auth for the embedded default: with no Clerk key and outside production, a key pair kept
 * under DATA_DIR/dev-auth signs tokens for dev users (`npm run dev:token -- alice`), and the
 * server verifies them through the very same `verifyToken` path as Clerk's.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { generateKeyPair, type KeyPair, signJwt } from "./jwt.ts"

export const DEV_ISSUER = "wingmate-dev-auth"

const files = (dataDir: string) => {
  const dir = join(dataDir, "dev-auth")
  return { dir, publicKey: join(dir, "public.pem"), privateKey: join(dir, "private.pem") }
}

const read = (dataDir: string): KeyPair | undefined => {
  try {
    const paths = files(dataDir)
    return {
      publicKeyPem: readFileSync(paths.publicKey, "utf8"),
      privateKeyPem: readFileSync(paths.privateKey, "utf8")
    }
  } catch {
    return undefined
  }
}

/** The dev key pair, created on first use. Two processes starting together keep the first one written. */
export const loadOrCreateDevKeys = (dataDir: string): KeyPair => {
  const existing = read(dataDir)
  if (existing) return existing
  const paths = files(dataDir)
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 })
  const pair = generateKeyPair()
  try {
    writeFileSync(paths.privateKey, pair.privateKeyPem, { flag: "wx", mode: 0o600 })
    writeFileSync(paths.publicKey, pair.publicKeyPem, { flag: "wx", mode: 0o644 })
  } catch {
    // Another process won the race: use its pair.
  }
  return read(dataDir) ?? pair
}

export const DEV_USER_NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/

/** A session-like token for dev user `name` (Clerk id `user_dev_<name>`), valid for `ttlSeconds`. */
export const signDevToken = (
  keys: KeyPair,
  name: string,
  options: { readonly ttlSeconds?: number; readonly authorizedParty?: string } = {}
): string => {
  const now = Math.floor(Date.now() / 1000)
  const display = name.charAt(0).toUpperCase() + name.slice(1)
  return signJwt(keys.privateKeyPem, {
    iss: DEV_ISSUER,
    sub: `user_dev_${name}`,
    sid: `sess_dev_${name}`,
    iat: now,
    nbf: now - 5,
    exp: now + (options.ttlSeconds ?? 24 * 60 * 60),
    email: `${name}@dev.wingmate.local`,
    first_name: display,
    ...(options.authorizedParty === undefined ? {} : { azp: options.authorizedParty })
  })
}
