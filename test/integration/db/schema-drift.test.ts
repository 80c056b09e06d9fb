/**
 * prisma/schema.prisma and prisma/migrations must describe the same database: the migrations,
 * replayed by Prisma's schema engine on an in-memory shadow PGlite, leave nothing to migrate.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { diffSchemaAgainstMigrations, migrationsDir, schemaPath } from "../../../src/core/db/migrations.ts"

const TIMEOUT = 60_000
const temporaryDirs: Array<string> = []
afterAll(async () => {
  await Promise.all(temporaryDirs.map((dir) => rm(dir, { recursive: true, force: true })))
})

describe("schema drift", () => {
  it(
    "schema.prisma and the migrations folder agree (else: npm run db:migrate:create -- <name>)",
    async () => {
      const sql = await diffSchemaAgainstMigrations({ schema: schemaPath, migrationsDir })
      expect(sql, `schema.prisma has changes without a migration:\n${sql}`).toBe("")
    },
    TIMEOUT
  )

  it(
    "a schema with an extra model and column is reported with the SQL of the missing migration",
    async () => {
      const original = await readFile(schemaPath, "utf8")
      const withColumn = original.replace(/^model User \{$/m, "$&\n  nickname String?")
      expect(withColumn).not.toBe(original)
      const dir = await mkdtemp(path.join(tmpdir(), "wingmate-schema-"))
      temporaryDirs.push(dir)
      const modified = path.join(dir, "schema.prisma")
      await writeFile(modified, `${withColumn}\nmodel DriftProbe {\n  id   String @id\n  note String\n}\n`)

      const sql = await diffSchemaAgainstMigrations({ schema: modified, migrationsDir })
      expect(sql).toContain('ALTER TABLE "users" ADD COLUMN     "nickname" TEXT;')
      expect(sql).toContain('CREATE TABLE "DriftProbe" (')
      expect(sql).toContain('CONSTRAINT "DriftProbe_pkey" PRIMARY KEY ("id")')
    },
    TIMEOUT
  )
})
