/**
 * The typed REST client of `WingmateApi`, derived from the same contracts as the server
 * (`HttpApiClient`): one method per operation (`client.matches.list({ urlParams: { limit: 20 } })`),
 * payloads encoded and answers decoded by the server's own schemas (dates as `Date`), each
 * failure as its tagged error (`NotFound`, `ValidationError`, `QuotaExceeded`, …, and
 * `HttpApiDecodeError` for a request the server found invalid). Client-safe: it imports only
 * src/domain and `effect` / `@effect/platform`, never server code.
 *
 *   const program = Effect.gen(function* () {
 *     const api = yield* WingmateRestClient
 *     const page = yield* api.matches.list({ urlParams: { limit: 20 } })
 *     const session = yield* api.sessions.get({ path: { sessionId } })
 *   })
 *   program.pipe(Effect.provide(WingmateRestClient.layer({ baseUrl, token })))
 *
 * Streams are not for this client: `POST /magic-openers/generate` and `POST /sessions/:id/suggestions`
 * answer the saved result in the envelope (it never asks for `text/event-stream`); follow a session
 * with the RPC client's `sessions.follow`, or an SSE client on `GET /sessions/:id/events`.
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import { Context, Effect, Layer } from "effect"
import { WingmateApi } from "../domain/api.ts"

export interface WingmateRestClientOptions {
  /** Where the api is, e.g. `http://localhost:3000` (the operations' paths carry `/api/v1`). */
  readonly baseUrl: string
  /** The session token sent as `Authorization: Bearer` (asked for per request when an Effect); none: anonymous. */
  readonly token?: string | Effect.Effect<string> | undefined
}

/** `HttpApiClient.make(WingmateApi, …)` with the bearer token on every request; needs an `HttpClient`. */
export const makeWingmateRestClient = (options: WingmateRestClientOptions) => {
  const { token } = options
  return HttpApiClient.make(WingmateApi, {
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    transformClient: (client) =>
      token === undefined
        ? client
        : HttpClient.mapRequestEffect(client, (request) =>
            Effect.map(typeof token === "string" ? Effect.succeed(token) : token, (value) =>
              HttpClientRequest.bearerToken(request, value)
            )
          )
  })
}

export type WingmateRestClientService = Effect.Effect.Success<ReturnType<typeof makeWingmateRestClient>>

export class WingmateRestClient extends Context.Tag("WingmateRestClient")<
  WingmateRestClient,
  WingmateRestClientService
>() {
  /** On the platform's `fetch` (browsers, React Native, Node 22). */
  static layer(options: WingmateRestClientOptions): Layer.Layer<WingmateRestClient> {
    return Layer.effect(WingmateRestClient, makeWingmateRestClient(options)).pipe(Layer.provide(FetchHttpClient.layer))
  }
}
