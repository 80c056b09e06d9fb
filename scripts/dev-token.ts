/**
 * Prints a bearer token for dev user <name>, signed with the embedded dev key pair that
 * `npm run dev` verifies with (DATA_DIR/dev-auth). The token is the last line of the output.
 *
 *   npm run dev:token -- alice
 *   curl -H "Authorization: Bearer $(npm run -s dev:token -- alice | tail -n 1)" localhost:3000/api/v1/users/me
 */
import { existsSync } from "node:fs"
import { DEV_USER_NAME, loadOrCreateDevKeys, signDevToken } from "../src/core/auth/dev-auth.ts"

if (existsSync(".env")) process.loadEnvFile(".env")

const fail = (message: string): never => {
  console.error(message)
  process.exit(1)
}

const name = (process.argv[2] ?? "").toLowerCase()
if (!DEV_USER_NAME.test(name)) fail("usage: npm run dev:token -- <name>   (letters, digits, - and _; up to 32)")
if (process.env["NODE_ENV"] === "production") fail("dev tokens are refused in production")
if (process.env["CLERK_JWT_KEY"] || process.env["CLERK_SECRET_KEY"]) {
  console.error("note: Clerk keys are configured, so the server verifies Clerk's tokens, not dev tokens")
}

const dataDir = process.env["DATA_DIR"] || ".data"
const authorizedParty = (process.env["CLERK_AUTHORIZED_PARTIES"] ?? "").split(",")[0]?.trim() || undefined
const ttlHours = 24
const token = signDevToken(loadOrCreateDevKeys(dataDir), name, {
  ttlSeconds: ttlHours * 3600,
  ...(authorizedParty === undefined ? {} : { authorizedParty })
})
console.log(`dev user "${name}" (Clerk id user_dev_${name}), valid ${ttlHours} h, key in ${dataDir}/dev-auth:`)
console.log(token)
