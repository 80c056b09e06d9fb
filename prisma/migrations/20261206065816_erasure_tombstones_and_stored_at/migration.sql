-- AlterTable
ALTER TABLE "erased_accounts" ADD COLUMN     "user_id" TEXT;

-- AlterTable
ALTER TABLE "uploads" ADD COLUMN     "stored_at" TIMESTAMP(3);

-- CreateIndex
CREATE UNIQUE INDEX "erased_accounts_user_id_key" ON "erased_accounts"("user_id");

-- CreateIndex
CREATE INDEX "erased_accounts_erased_at_idx" ON "erased_accounts"("erased_at");
