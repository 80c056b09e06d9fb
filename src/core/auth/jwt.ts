/**
 * RS256 key pairs and token signing with node:crypto, for the embedded dev auth and for tests.
 * Verification never happens here: every token goes through `@clerk/backend`'s `verifyToken`.
 */
import { createPrivateKey, generateKeyPairSync, sign } from "node:crypto"

export interface KeyPair {
  readonly publicKeyPem: string
  readonly privateKeyPem: string
}

export const generateKeyPair = (): KeyPair => {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 })
  return {
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString()
  }
}

const base64url = (value: string | Buffer) => Buffer.from(value).toString("base64url")

/** A compact JWS, RS256, with the header Clerk uses (`typ: JWT`, an optional `kid`). */
export const signJwt = (
  privateKeyPem: string,
  payload: Readonly<Record<string, unknown>>,
  header: Readonly<Record<string, unknown>> = {}
): string => {
  const encoded = `${base64url(JSON.stringify({ alg: "RS256", typ: "JWT", ...header }))}.${base64url(JSON.stringify(payload))}`
  const signature = sign("sha256", Buffer.from(encoded), createPrivateKey(privateKeyPem))
  return `${encoded}.${base64url(signature)}`
}
