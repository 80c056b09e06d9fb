/** RATE_LIMIT_* and TRUST_PROXY: defaults, parsing, and errors that name the variable. */
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Either } from "effect"
import { AppConfig, describeConfigError } from "../../../../src/core/config.ts"

const loaded = (env: Record<string, string>) =>
  AppConfig.pipe(
    Effect.provide(AppConfig.Default),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
  )

const load = (env: Record<string, string>) => Effect.either(loaded(env))

const window = (seconds: number) => Duration.seconds(seconds)

describe("rate limit settings", () => {
  it.effect("defaults for a mobile app, no proxy trusted", () =>
    Effect.gen(function* () {
      const config = yield* loaded({})
      expect(config.rateLimits).toEqual({
        enabled: true,
        restUser: { name: "rest-user", limit: 300, window: window(60) },
        restIp: { name: "rest-ip", limit: 600, window: window(60) },
        wsConnectUser: { name: "ws-connect-user", limit: 20, window: window(60) },
        wsConnectIp: { name: "ws-connect-ip", limit: 60, window: window(60) },
        wsMessageConnection: { name: "ws-message-connection", limit: 40, window: window(10) },
        wsMessageUser: { name: "ws-message-user", limit: 60, window: window(10) },
        wsMessageIp: { name: "ws-message-ip", limit: 300, window: window(10) },
        docsIp: { name: "docs-ip", limit: 30, window: window(60) },
        exportUser: { name: "export-user", limit: 5, window: window(3600) }
      })
      expect(config.trustProxy).toBe(0)
    })
  )

  it.effect("<limit>/<window> in ms, s, m or h; TRUST_PROXY true or a number of hops", () =>
    Effect.gen(function* () {
      const config = yield* loaded({
        RATE_LIMIT_ENABLED: "false",
        RATE_LIMIT_REST_USER: " 10 / 2m ",
        RATE_LIMIT_WS_MESSAGE_IP: "5/1500ms",
        RATE_LIMIT_WS_CONNECT_USER: "1000/1h",
        TRUST_PROXY: "true"
      })
      expect(config.rateLimits.enabled).toBe(false)
      expect(config.rateLimits.restUser).toEqual({ name: "rest-user", limit: 10, window: window(120) })
      expect(config.rateLimits.wsMessageIp).toEqual({ name: "ws-message-ip", limit: 5, window: Duration.millis(1500) })
      expect(config.rateLimits.wsConnectUser.window).toEqual(window(3600))
      expect(config.trustProxy).toBe(1)
      expect((yield* loaded({ TRUST_PROXY: "2" })).trustProxy).toBe(2)
    })
  )

  it.effect("bad values are refused, each naming its variable", () =>
    Effect.gen(function* () {
      const refused = yield* load({
        RATE_LIMIT_REST_USER: "300",
        RATE_LIMIT_REST_IP: "0/60s",
        RATE_LIMIT_WS_MESSAGE_USER: "60/500ms",
        RATE_LIMIT_WS_CONNECT_IP: "10/2d",
        TRUST_PROXY: "yes"
      })
      const rule = "Expected <limit>/<window> with a limit of at least 1 and a window from 1s to 24h, e.g. 300/60s"
      expect(Either.isLeft(refused) && [...describeConfigError(refused.left)].sort()).toEqual([
        `RATE_LIMIT_REST_IP: invalid value: ${rule}`,
        `RATE_LIMIT_REST_USER: invalid value: ${rule}`,
        `RATE_LIMIT_WS_CONNECT_IP: invalid value: ${rule}`,
        `RATE_LIMIT_WS_MESSAGE_USER: invalid value: ${rule}`,
        "TRUST_PROXY: invalid value: Expected true, false or a number of proxy hops from 0 to 10"
      ])
    })
  )
})
