/**
 * Baseline: `GET /api/v1/sessions` on the seed's own stack, built the way its backend guide
 * (shared/seed/backend-stack-guide.md) builds it: Express 5 with Helmet, CORS, pino-http and
 * `express.json({ limit: "10mb" })`; `clerkAuth` (`@clerk/backend` `verifyToken` with a
 * networkless `jwtKey`, on every request) → `loadUser` (Clerk id → internal user, one Prisma
 * query per request) → Zod validation → controller → service → Prisma 7 (the project's generated
 * client on `@prisma/adapter-pg`); `{ success, data }` envelope; `AppError` + error handler.
 * Same query and JSON as Wingmate: keyset pagination on (createdAt, id), newest first.
 *
 * Env: PORT, DATABASE_URL, DATABASE_POOL_MAX (10, Wingmate's default), CLERK_JWT_KEY,
 * CLERK_AUTHORIZED_PARTIES, LOG_LEVEL (pino's: info logs a line per request, warn does not).
 */
import { verifyToken } from "@clerk/backend"
import { PrismaPg } from "@prisma/adapter-pg"
import cors from "cors"
import express, { type NextFunction, type Request, type Response, Router } from "express"
import helmet from "helmet"
import { pinoHttp } from "pino-http"
import { z } from "zod"
import { PrismaClient } from "../../../src/core/db/generated/client.ts"

// --- core/env ---
const env = z
  .object({
    PORT: z.coerce.number().int().default(3000),
    DATABASE_URL: z.string().min(1, "DATABASE_URL is required"),
    DATABASE_POOL_MAX: z.coerce.number().int().positive().default(10),
    CLERK_JWT_KEY: z.string().min(1, "CLERK_JWT_KEY is required"),
    CLERK_AUTHORIZED_PARTIES: z.string().default(""),
    LOG_LEVEL: z.string().default("info")
  })
  .parse(process.env)

// --- core/error ---
class AppError extends Error {
  readonly code: string
  readonly statusCode: number
  readonly details: unknown
  constructor(code: string, message: string, statusCode = 500, details?: unknown) {
    super(message)
    this.code = code
    this.statusCode = statusCode
    this.details = details
  }
}

// --- core/database ---
const prisma = new PrismaClient({
  adapter: new PrismaPg({ connectionString: env.DATABASE_URL, max: env.DATABASE_POOL_MAX })
})

// --- modules/auth: clerkAuth → loadUser ---
interface AuthedLocals {
  clerkId?: string
  user?: { id: string }
  query?: SessionsQuery
}
const authorizedParties = env.CLERK_AUTHORIZED_PARTIES.split(",").filter((party) => party !== "")

const clerkAuth = async (req: Request, res: Response<unknown, AuthedLocals>, next: NextFunction) => {
  const header = req.headers.authorization ?? ""
  const token = header.startsWith("Bearer ") ? header.slice(7) : ""
  if (token === "") return next(new AppError("UNAUTHORIZED", "Authentication failed", 401))
  try {
    const claims = await verifyToken(token, {
      jwtKey: env.CLERK_JWT_KEY,
      ...(authorizedParties.length === 0 ? {} : { authorizedParties }),
      clockSkewInMs: 5_000
    })
    res.locals.clerkId = claims.sub
    next()
  } catch {
    next(new AppError("UNAUTHORIZED", "Authentication failed", 401))
  }
}

const loadUser = async (_req: Request, res: Response<unknown, AuthedLocals>, next: NextFunction) => {
  const clerkId = res.locals.clerkId
  if (clerkId === undefined) return next(new AppError("UNAUTHORIZED", "Authentication failed", 401))
  const user = await prisma.user.findUnique({ where: { clerkId }, select: { id: true } })
  if (user === null) return next(new AppError("UNAUTHORIZED", "Authentication failed", 401))
  res.locals.user = user
  next()
}

// --- modules/sessions ---
const sessionsQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional()
})
type SessionsQuery = z.infer<typeof sessionsQuerySchema>

const validateQuery = (req: Request, res: Response<unknown, AuthedLocals>, next: NextFunction) => {
  const parsed = sessionsQuerySchema.safeParse(req.query)
  if (!parsed.success) return next(new AppError("VALIDATION_ERROR", "Invalid query", 400, parsed.error.issues))
  res.locals.query = parsed.data
  next()
}

const TONES = new Set(["playful", "flirty", "witty", "sincere", "bold"])
const PHASES = new Set(["normalise", "ocr", "transcript", "suggestions"])

const decodeCursor = (cursor: string) => {
  const [iso, id] = Buffer.from(cursor, "base64url").toString("utf8").split("|")
  const createdAt = new Date(iso ?? "")
  if (id === undefined || !/^[a-z0-9]{1,64}$/i.test(id) || Number.isNaN(createdAt.getTime())) {
    throw new AppError("VALIDATION_ERROR", "Invalid cursor", 400)
  }
  return { OR: [{ createdAt: { lt: createdAt } }, { createdAt, id: { lt: id } }] }
}

const createSessionsService = (db: PrismaClient) => ({
  list: async (userId: string, limit: number, cursor: string | undefined) => {
    const rows = await db.session.findMany({
      where: { userId, ...(cursor === undefined ? {} : decodeCursor(cursor)) },
      orderBy: [{ createdAt: "desc" }, { id: "desc" }],
      take: limit + 1,
      include: { _count: { select: { images: true } } }
    })
    const items = rows.slice(0, limit)
    const last = items.at(-1)
    return {
      items: items.map((row) => ({
        id: row.id,
        matchId: row.matchId,
        status: row.status,
        phase: row.phase !== null && PHASES.has(row.phase) ? row.phase : null,
        errorCode: row.errorCode,
        tone: TONES.has(row.tone) ? row.tone : "playful",
        language: row.language,
        imageCount: row._count.images,
        createdAt: row.createdAt,
        completedAt: row.completedAt
      })),
      nextCursor:
        rows.length > limit && last !== undefined
          ? Buffer.from(`${last.createdAt.toISOString()}|${last.id}`).toString("base64url")
          : null
    }
  }
})

const listSessions =
  (service: ReturnType<typeof createSessionsService>) =>
  async (_req: Request, res: Response<unknown, AuthedLocals>) => {
    const query = res.locals.query ?? { limit: 20 }
    const data = await service.list(res.locals.user?.id ?? "", query.limit, query.cursor)
    res.json({ success: true, data })
  }

const createSessionsRoutes = (service: ReturnType<typeof createSessionsService>) => {
  const router = Router()
  router.get("/", clerkAuth, loadUser, validateQuery, listSessions(service))
  return router
}

// --- app.ts ---
const createApp = () => {
  const app = express()
  app.use(helmet())
  app.use(cors())
  app.use(pinoHttp({ level: env.LOG_LEVEL, redact: ["req.headers.authorization", "req.headers.cookie"] }))
  app.use(express.json({ limit: "10mb" }))
  app.get("/health/ready", (_req, res) => {
    res.json({ success: true, data: { status: "ready" } })
  })
  app.use("/api/v1/sessions", createSessionsRoutes(createSessionsService(prisma)))
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof AppError) {
      res
        .status(err.statusCode)
        .json({ success: false, error: { code: err.code, message: err.message, details: err.details } })
      return
    }
    res.status(500).json({ success: false, error: { code: "INTERNAL_ERROR", message: "An unexpected error occurred" } })
  })
  return app
}

// --- server.ts ---
await prisma.$connect()
const server = createApp().listen(env.PORT, "127.0.0.1")
const shutdown = () => {
  server.close()
  void prisma.$disconnect().finally(() => process.exit(0))
}
process.once("SIGTERM", shutdown)
process.once("SIGINT", shutdown)
