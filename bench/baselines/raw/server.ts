/**
 * Baseline "the limit": `GET /api/v1/sessions` on bare `node:http` and a `pg` Pool, doing what
 * Wingmate does with nothing around it. Same semantics as Wingmate, so the ratio measures the
 * framework and not a difference in work:
 * - JWT: RS256 verified with node:crypto against the same public key (CLERK_JWT_KEY), with the
 *   checks `@clerk/backend` makes that matter here (alg, signature, exp/nbf/iat with 5 s skew,
 *   azp); a verified token is remembered until it expires, like Wingmate's TokenVerifier.
 * - Clerk id → user id: one indexed query, remembered 30 s (Wingmate's USER_CACHE_TTL_MS).
 * - The same query (keyset on (created_at, id), newest first, limit + 1, image count), the same
 *   JSON and envelope, a request id and the same security headers; one JSON log line per request
 *   when LOG_LEVEL is info or lower.
 * Env: PORT, DATABASE_URL, DATABASE_POOL_MAX (10), CLERK_JWT_KEY, CLERK_AUTHORIZED_PARTIES, LOG_LEVEL.
 */
import { createPublicKey, randomUUID, verify } from "node:crypto"
import { createServer, type ServerResponse } from "node:http"
import pg from "pg"

const port = Number(process.env["PORT"] ?? "3000")
const publicKey = createPublicKey((process.env["CLERK_JWT_KEY"] ?? "").replaceAll("\\n", "\n"))
const authorizedParties = (process.env["CLERK_AUTHORIZED_PARTIES"] ?? "").split(",").filter((party) => party !== "")
const logRequests = ["trace", "debug", "info"].includes((process.env["LOG_LEVEL"] ?? "info").toLowerCase())
const skewMs = 5_000
const userTtlMs = 30_000

// Prisma stores `timestamp(3)` without a time zone, in UTC: read it as UTC.
pg.types.setTypeParser(1114, (value) => new Date(`${value.replace(" ", "T")}Z`))
const pool = new pg.Pool({
  connectionString: process.env["DATABASE_URL"],
  max: Number(process.env["DATABASE_POOL_MAX"] ?? "10")
})

const HEADERS = {
  "content-type": "application/json",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin"
}

const send = (res: ServerResponse, status: number, body: unknown, requestId: string) => {
  const json = JSON.stringify(body)
  res.writeHead(status, { ...HEADERS, "content-length": Buffer.byteLength(json), "x-request-id": requestId })
  res.end(json)
}

const fail = (res: ServerResponse, status: number, code: string, message: string, requestId: string) =>
  send(res, status, { success: false, error: { code, message } }, requestId)

const verified = new Map<string, { clerkId: string; expiresAt: number }>()

const verifyJwt = (token: string): { clerkId: string; expiresAt: number } | undefined => {
  const known = verified.get(token)
  if (known !== undefined) {
    if (known.expiresAt + skewMs > Date.now()) return known
    verified.delete(token)
    return undefined
  }
  const [header, payload, signature] = token.split(".")
  if (header === undefined || payload === undefined || signature === undefined) return undefined
  try {
    if (JSON.parse(Buffer.from(header, "base64url").toString()).alg !== "RS256") return undefined
    const signed = Buffer.from(`${header}.${payload}`)
    if (!verify("sha256", signed, publicKey, Buffer.from(signature, "base64url"))) return undefined
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString())
    const now = Date.now()
    if (typeof claims.sub !== "string" || typeof claims.exp !== "number") return undefined
    if (claims.exp * 1000 + skewMs <= now) return undefined
    if (typeof claims.nbf === "number" && claims.nbf * 1000 - skewMs > now) return undefined
    if (typeof claims.iat === "number" && claims.iat * 1000 - skewMs > now) return undefined
    if (authorizedParties.length > 0 && typeof claims.azp === "string" && !authorizedParties.includes(claims.azp))
      return undefined
    const identity = { clerkId: claims.sub, expiresAt: claims.exp * 1000 }
    if (verified.size >= 10_000) verified.clear()
    verified.set(token, identity)
    return identity
  } catch {
    return undefined
  }
}

const users = new Map<string, { id: string; until: number }>()

const userIdOf = async (clerkId: string): Promise<string | undefined> => {
  const cached = users.get(clerkId)
  if (cached !== undefined && cached.until > Date.now()) return cached.id
  const { rows } = await pool.query<{ id: string }>({
    name: "user_by_clerk_id",
    text: "SELECT id FROM users WHERE clerk_id = $1",
    values: [clerkId]
  })
  const id = rows[0]?.id
  if (id !== undefined) {
    if (users.size >= 50_000) users.clear()
    users.set(clerkId, { id, until: Date.now() + userTtlMs })
  }
  return id
}

interface Row {
  id: string
  match_id: string | null
  status: string
  phase: string | null
  error_code: string | null
  tone: string
  language: string
  image_count: number
  created_at: Date
  completed_at: Date | null
}

const COLUMNS = `s.id, s.match_id, s.status, s.phase, s.error_code, s.tone, s.language, s.created_at, s.completed_at,
  (SELECT count(*)::int FROM session_images i WHERE i.session_id = s.id) AS image_count`
const FIRST_PAGE = `SELECT ${COLUMNS} FROM sessions s WHERE s.user_id = $1
  ORDER BY s.created_at DESC, s.id DESC LIMIT $2`
const NEXT_PAGE = `SELECT ${COLUMNS} FROM sessions s WHERE s.user_id = $1 AND (s.created_at, s.id) < ($3::timestamp, $4)
  ORDER BY s.created_at DESC, s.id DESC LIMIT $2`

const TONES = new Set(["playful", "flirty", "witty", "sincere", "bold"])
const PHASES = new Set(["normalise", "ocr", "transcript", "suggestions"])
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

const list = async (userId: string, limit: number, cursor: string | null) => {
  let query: pg.QueryConfig
  if (cursor === null) {
    query = { name: "first_page", text: FIRST_PAGE, values: [userId, limit + 1] }
  } else {
    const [iso, id] = Buffer.from(cursor, "base64url").toString("utf8").split("|")
    if (iso === undefined || !ISO.test(iso) || id === undefined || !/^[a-z0-9]{1,64}$/i.test(id)) return undefined
    query = { name: "next_page", text: NEXT_PAGE, values: [userId, limit + 1, iso, id] }
  }
  const { rows } = await pool.query<Row>(query)
  const items = rows.slice(0, limit)
  const last = items.at(-1)
  return {
    items: items.map((row) => ({
      id: row.id,
      matchId: row.match_id,
      status: row.status,
      phase: row.phase !== null && PHASES.has(row.phase) ? row.phase : null,
      errorCode: row.error_code,
      tone: TONES.has(row.tone) ? row.tone : "playful",
      language: row.language,
      imageCount: row.image_count,
      createdAt: row.created_at,
      completedAt: row.completed_at
    })),
    nextCursor:
      rows.length > limit && last !== undefined
        ? Buffer.from(`${last.created_at.toISOString()}|${last.id}`).toString("base64url")
        : null
  }
}

const server = createServer(async (req, res) => {
  const started = performance.now()
  const requestId = randomUUID()
  const url = new URL(req.url ?? "/", "http://localhost")
  try {
    if (req.method === "GET" && url.pathname === "/health/ready") {
      send(res, 200, { success: true, data: { status: "ready" } }, requestId)
    } else if (req.method === "GET" && url.pathname === "/api/v1/sessions") {
      const header = req.headers.authorization ?? ""
      const identity = header.startsWith("Bearer ") ? verifyJwt(header.slice(7)) : undefined
      const userId = identity === undefined ? undefined : await userIdOf(identity.clerkId)
      if (userId === undefined) {
        fail(res, 401, "UNAUTHORIZED", "Authentication failed", requestId)
      } else {
        const limit = Number(url.searchParams.get("limit") ?? "20")
        const page =
          Number.isInteger(limit) && limit >= 1 && limit <= 100
            ? await list(userId, limit, url.searchParams.get("cursor"))
            : undefined
        if (page === undefined) fail(res, 400, "VALIDATION_ERROR", "Invalid query", requestId)
        else send(res, 200, { success: true, data: page }, requestId)
      }
    } else {
      fail(res, 404, "ROUTE_NOT_FOUND", `No route for ${req.method} ${url.pathname}`, requestId)
    }
  } catch {
    fail(res, 500, "INTERNAL_ERROR", "An unexpected error occurred", requestId)
  }
  if (logRequests) {
    process.stdout.write(
      `${JSON.stringify({
        level: "INFO",
        timestamp: new Date().toISOString(),
        message: `${req.method} ${url.pathname} ${res.statusCode}`,
        requestId,
        status: res.statusCode,
        durationMs: Math.round((performance.now() - started) * 100) / 100
      })}\n`
    )
  }
})

server.listen(port, "127.0.0.1")
const shutdown = () => {
  server.close()
  void pool.end().finally(() => process.exit(0))
}
process.once("SIGTERM", shutdown)
process.once("SIGINT", shutdown)
