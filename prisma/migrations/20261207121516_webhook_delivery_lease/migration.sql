-- AlterTable
ALTER TABLE "webhook_deliveries" ADD COLUMN     "lease_until" TIMESTAMP(3),
ADD COLUMN     "processed_at" TIMESTAMP(3);

-- CreateIndex
CREATE INDEX "webhook_deliveries_received_at_idx" ON "webhook_deliveries"("received_at");

-- Rows from before: each was recorded with its work (a failure deleted it), so processed.
UPDATE "webhook_deliveries" SET "processed_at" = "received_at";
