-- CreateIndex
CREATE INDEX "sessions_status_updated_at_idx" ON "sessions"("status", "updated_at");
