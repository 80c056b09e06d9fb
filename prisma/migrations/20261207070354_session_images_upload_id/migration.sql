-- CreateIndex
CREATE INDEX "session_images_upload_id_idx" ON "session_images"("upload_id");
