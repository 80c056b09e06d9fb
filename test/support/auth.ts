/**
 * Test identities: tokens signed with a test key pair and verified by the real `@clerk/backend`
 * through the server's own `TokenVerifier`, as in production with CLERK_JWT_KEY.
 */
import { TokenVerifier } from "../../src/core/auth/token-verifier.ts"
import { generateKeyPair, signJwt } from "../../src/core/auth/jwt.ts"

export const testKeys = generateKeyPair()
export const otherKeys = generateKeyPair()
export const TEST_AUTHORIZED_PARTY = "https://app.wingmate.test"

export const TestTokenVerifier = TokenVerifier.fromOptions({
  jwtKey: testKeys.publicKeyPem,
  authorizedParties: [TEST_AUTHORIZED_PARTY],
  clockSkewMs: 5_000
})

export interface TokenOptions {
  readonly clerkId: string
  readonly email?: string
  readonly firstName?: string
  readonly lastName?: string
  /** Seconds from now; negative for an expired token. */
  readonly expiresIn?: number
  /** Seconds from now before which the token is not valid. */
  readonly notBefore?: number
  readonly azp?: string | null
  readonly keys?: { readonly privateKeyPem: string }
}

export const tokenFor = (options: TokenOptions): string => {
  const now = Math.floor(Date.now() / 1000)
  return signJwt((options.keys ?? testKeys).privateKeyPem, {
    sub: options.clerkId,
    sid: `sess_${options.clerkId}`,
    iss: "https://clerk.wingmate.test",
    iat: now - 1,
    nbf: now + (options.notBefore ?? -5),
    exp: now + (options.expiresIn ?? 60),
    ...(options.azp === null ? {} : { azp: options.azp ?? TEST_AUTHORIZED_PARTY }),
    ...(options.email === undefined ? {} : { email: options.email }),
    ...(options.firstName === undefined ? {} : { first_name: options.firstName }),
    ...(options.lastName === undefined ? {} : { last_name: options.lastName })
  })
}

let counter = 0
/** A fresh Clerk id per call, so parallel test files never share users. */
export const newClerkId = (label = "user") =>
  `user_test_${label}_${process.pid}_${Date.now().toString(36)}_${counter++}`

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
