-- CreateTable
CREATE TABLE "ai_spend_reservations" (
    "id" TEXT NOT NULL,
    "user_id" TEXT NOT NULL,
    "amount_micros" INTEGER NOT NULL,
    "expires_at" TIMESTAMP(3) NOT NULL,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ai_spend_reservations_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "ai_spend_reservations_user_id_expires_at_idx" ON "ai_spend_reservations"("user_id", "expires_at");

-- AddForeignKey
ALTER TABLE "ai_spend_reservations" ADD CONSTRAINT "ai_spend_reservations_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- The spend cap no longer keeps a per-day total of reservations in usage_counters: what calls
-- killed mid-flight left there would otherwise stay counted for the rest of the day.
DELETE FROM "usage_counters" WHERE "kind" = 'ai_spend_reserved';
