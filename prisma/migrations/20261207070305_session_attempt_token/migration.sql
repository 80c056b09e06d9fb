-- AlterTable
ALTER TABLE "sessions" ADD COLUMN     "attempt_token" TEXT;

-- AlterTable
ALTER TABLE "suggestions" ADD COLUMN     "attempt_token" TEXT;
