// Prisma CLI configuration (Prisma 7 reads the database URL from here, not from the schema).
// Prisma does not load `.env` itself; Node's loader does it when the file exists.
import { existsSync } from "node:fs"
import { defineConfig } from "prisma/config"

if (existsSync(".env")) process.loadEnvFile(".env")

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  // `generate` needs no database; `migrate deploy` on a production host reads DATABASE_URL.
  datasource: { url: process.env["DATABASE_URL"] ?? "postgresql://localhost:5432/wingmate" }
})
