-- AlterTable
ALTER TABLE "sessions" ADD COLUMN "originals_expire_at" TIMESTAMP(3);

-- CreateIndex
CREATE INDEX "sessions_originals_expire_at_idx" ON "sessions"("originals_expire_at");
