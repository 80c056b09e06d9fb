-- Emails are stored in lower case from now on, from a session token's claim as from Clerk's
-- webhooks (which were already). Rows a token provisioned before keep no capitals, unless another
-- account holds the same address in other capitals (the unique index): Clerk's next update of
-- either settles it.
UPDATE "users" AS u SET "email" = lower(u."email")
WHERE u."email" <> lower(u."email")
  AND NOT EXISTS (SELECT 1 FROM "users" AS o WHERE o."id" <> u."id" AND lower(o."email") = lower(u."email"));
