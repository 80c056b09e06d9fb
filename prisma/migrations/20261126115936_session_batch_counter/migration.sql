-- AlterTable
ALTER TABLE "sessions" ADD COLUMN     "last_batch" INTEGER NOT NULL DEFAULT 0;

-- Sessions regenerated before the counter existed continue after their highest batch.
UPDATE "sessions" AS s
SET "last_batch" = COALESCE((SELECT MAX(g."batch") FROM "suggestions" AS g WHERE g."session_id" = s."id"), 0);
