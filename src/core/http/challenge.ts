/**
 * `WWW-Authenticate` on a REST 401 (RFC 6750 §3): the scheme the API wants, and
 * `error="invalid_token"` once a token was sent and refused, so that a client (or a generic
 * HTTP library) knows to sign in again rather than to retry. RPC and WebSocket have no such header.
 */
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect } from "effect"

export const bearerChallenge = (tokenSent: boolean): string => (tokenSent ? 'Bearer error="invalid_token"' : "Bearer")

/**
 * Registered for the current request, it sets the challenge only if the answer is a 401: a 401 a
 * handler gives later (an account erased meanwhile) carries it too, any other answer is untouched.
 */
export const challengeOnUnauthorized = (tokenSent: boolean) =>
  HttpApp.appendPreResponseHandler((_request, response) =>
    Effect.succeed(
      response.status === 401
        ? HttpServerResponse.setHeader(response, "www-authenticate", bearerChallenge(tokenSent))
        : response
    )
  )
