-- AlterTable
ALTER TABLE "ai_calls" ADD COLUMN     "session_id" TEXT;

-- CreateIndex
CREATE INDEX "ai_calls_session_id_idx" ON "ai_calls"("session_id");
