/** The AI strategy's failures as the API sends them (quota answers carry `Retry-After`). */
import { Effect } from "effect"
import {
  AiInvalidOutput as AiInvalidOutputWire,
  AiRequestRejected,
  AiUnavailable as AiUnavailableWire,
  QuotaExceeded
} from "../../domain/errors.ts"
import { retryAfter } from "../http/retry-after.ts"
import type { AiError } from "./errors.ts"

export type AiWireError = AiUnavailableWire | AiRequestRejected | AiInvalidOutputWire | QuotaExceeded

export const aiErrorToWire = (error: AiError): Effect.Effect<never, AiWireError> => {
  switch (error._tag) {
    case "AiQuotaExceeded":
      return Effect.zipRight(
        retryAfter(error.retryAfterSeconds),
        Effect.fail(
          new QuotaExceeded({
            message: "Today's AI budget for this account is used up",
            details: { retryAfterSeconds: error.retryAfterSeconds }
          })
        )
      )
    case "AiUnavailable":
      return Effect.fail(
        new AiUnavailableWire({
          message: "No AI provider could answer; try again shortly",
          details: { attempts: error.attempts }
        })
      )
    case "AiStreamFailed":
      return Effect.fail(
        new AiUnavailableWire({
          message: "The AI provider stopped mid-answer; try again",
          details: { provider: error.provider, kind: error.kind }
        })
      )
    case "AiRejected":
      return Effect.fail(
        new AiRequestRejected({
          message: "The AI provider refused this request",
          details: { provider: error.provider }
        })
      )
    case "AiInvalidOutput":
      return Effect.fail(
        new AiInvalidOutputWire({
          message: "The AI answer was unusable; try again",
          details: { provider: error.provider }
        })
      )
  }
}

/** For `Effect.catchTags`: every failure of the AI chain as its wire error. */
export const aiFailuresToWire = {
  AiUnavailable: aiErrorToWire,
  AiRejected: aiErrorToWire,
  AiInvalidOutput: aiErrorToWire,
  AiStreamFailed: aiErrorToWire,
  AiQuotaExceeded: aiErrorToWire
} as const
