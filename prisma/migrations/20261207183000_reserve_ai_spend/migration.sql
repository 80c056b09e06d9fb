-- A call's admission under the daily spend cap in one statement (src/core/ai/ledger-db.ts): the
-- user's row locked (admissions of one user run one at a time), their expired reservations deleted,
-- what they spent and reserved summed, and the reservation inserted when it fits. It was an
-- interactive transaction of seven statements, each a round trip while the lock was held.
-- In READ COMMITTED each statement of a PL/pgSQL function takes a new snapshot: the sums see every
-- admission that held the lock before this one.
-- Returns 'gone' (no such user: erased after the call was let in), 'refused' or 'admitted', and
-- what was spent and reserved before this call.
CREATE FUNCTION "reserve_ai_spend"(
    "p_user_id" TEXT,
    "p_id" TEXT,
    "p_amount_micros" INTEGER,
    "p_cap_micros" BIGINT,
    "p_since" TIMESTAMP(3),
    "p_now" TIMESTAMP(3),
    "p_expires_at" TIMESTAMP(3)
) RETURNS TABLE ("outcome" TEXT, "spent_micros" BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    "spent" BIGINT;
BEGIN
    -- FOR NO KEY UPDATE: no conflict with the key-share locks of inserts that reference the user.
    PERFORM 1 FROM "users" WHERE "id" = "p_user_id" FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'gone'::TEXT, 0::BIGINT;
        RETURN;
    END IF;
    -- Reservations of calls whose process died: they count for nothing already, and go here.
    DELETE FROM "ai_spend_reservations" WHERE "user_id" = "p_user_id" AND "expires_at" <= "p_now";
    SELECT
        COALESCE((SELECT SUM("amount_micros") FROM "ai_spend_reservations"
                  WHERE "user_id" = "p_user_id" AND "expires_at" > "p_now"), 0)
      + COALESCE((SELECT SUM("cost_micros") FROM "ai_calls"
                  WHERE "user_id" = "p_user_id" AND "created_at" >= "p_since"), 0)
    INTO "spent";
    IF "spent" + "p_amount_micros" > "p_cap_micros" THEN
        RETURN QUERY SELECT 'refused'::TEXT, "spent";
        RETURN;
    END IF;
    INSERT INTO "ai_spend_reservations" ("id", "user_id", "amount_micros", "expires_at", "created_at")
    VALUES ("p_id", "p_user_id", "p_amount_micros", "p_expires_at", "p_now");
    RETURN QUERY SELECT 'admitted'::TEXT, "spent";
END
$$;
