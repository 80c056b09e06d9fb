/**
 * The rate limits' environment variables, as one `Config` placed in `AppConfig` (under
 * `rateLimits`). Each rule is `<limit>/<window>`, e.g. `RATE_LIMIT_REST_USER=300/60s`
 * (window units: ms, s, m, h), so a limit and its window are read, and refused, together.
 */
import { Config, Duration } from "effect"

/** At most `limit` units (calls, by default) in any `window`; `name` keeps rules' counters apart. */
export interface RateRule {
  readonly name: string
  readonly limit: number
  readonly window: Duration.Duration
}

const RULE = /^\s*(\d{1,9})\s*\/\s*(\d{1,9})\s*(ms|s|m|h)\s*$/
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const

/** Parses `<limit>/<window>`; undefined when malformed or out of range (limit ≥ 1, window 1 s to 24 h). */
export const parseRateRule = (name: string, text: string): RateRule | undefined => {
  const match = RULE.exec(text)
  if (match === null) return undefined
  const [, limit, amount, unit] = match
  if (limit === undefined || amount === undefined || unit === undefined || !(unit in UNIT_MS)) return undefined
  const windowMs = Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS]
  if (Number(limit) < 1 || windowMs < 1_000 || windowMs > 86_400_000) return undefined
  return { name, limit: Number(limit), window: Duration.millis(windowMs) }
}

/** A rule from `variable`, validated on the named primitive (so errors name the variable). */
export const rateRuleConfig = (name: string, variable: string, fallback: string): Config.Config<RateRule> =>
  Config.string(variable).pipe(
    Config.validate({
      message: "Expected <limit>/<window> with a limit of at least 1 and a window from 1s to 24h, e.g. 300/60s",
      validation: (text) => parseRateRule(name, text) !== undefined
    }),
    Config.withDefault(fallback),
    Config.map((text) => parseRateRule(name, text) ?? { name, limit: 1, window: Duration.seconds(1) })
  )

export interface RateLimitSettings {
  readonly enabled: boolean
  /** Authenticated REST requests, per user. */
  readonly restUser: RateRule
  /** Every REST request under /api/v1, per client IP. */
  readonly restIp: RateRule
  /** WebSocket connections opened, per user. */
  readonly wsConnectUser: RateRule
  /** WebSocket connections opened, per client IP. */
  readonly wsConnectIp: RateRule
  /** WebSocket messages received, per connection: the first budget a frame is counted against. */
  readonly wsMessageConnection: RateRule
  /** WebSocket messages received, per user (authenticated connections). */
  readonly wsMessageUser: RateRule
  /** WebSocket messages received, per client IP (authenticated connections, after the two above). */
  readonly wsMessageIp: RateRule
  /** /docs, its script and /openapi.json, per client IP. */
  readonly docsIp: RateRule
  /** GET /users/me/export, per user, on top of the REST limits: each one reads all the account's rows. */
  readonly exportUser: RateRule
}

export const rateLimitsConfig: Config.Config<RateLimitSettings> = Config.all({
  enabled: Config.boolean("RATE_LIMIT_ENABLED").pipe(Config.withDefault(true)),
  restUser: rateRuleConfig("rest-user", "RATE_LIMIT_REST_USER", "300/60s"),
  restIp: rateRuleConfig("rest-ip", "RATE_LIMIT_REST_IP", "600/60s"),
  wsConnectUser: rateRuleConfig("ws-connect-user", "RATE_LIMIT_WS_CONNECT_USER", "20/60s"),
  wsConnectIp: rateRuleConfig("ws-connect-ip", "RATE_LIMIT_WS_CONNECT_IP", "60/60s"),
  wsMessageConnection: rateRuleConfig("ws-message-connection", "RATE_LIMIT_WS_MESSAGE_CONNECTION", "40/10s"),
  wsMessageUser: rateRuleConfig("ws-message-user", "RATE_LIMIT_WS_MESSAGE_USER", "60/10s"),
  wsMessageIp: rateRuleConfig("ws-message-ip", "RATE_LIMIT_WS_MESSAGE_IP", "300/10s"),
  docsIp: rateRuleConfig("docs-ip", "RATE_LIMIT_DOCS_IP", "30/60s"),
  exportUser: rateRuleConfig("export-user", "RATE_LIMIT_EXPORT_USER", "5/3600s")
})

/**
 * How many reverse proxies in front of the api append to `X-Forwarded-For` (`TRUST_PROXY`:
 * `false`/`0` = none, the default: the socket's address is the client; `true` = 1).
 */
export const trustProxyConfig: Config.Config<number> = Config.string("TRUST_PROXY").pipe(
  Config.validate({
    message: "Expected true, false or a number of proxy hops from 0 to 10",
    validation: (text) => /^\s*(true|false|10|[0-9])\s*$/i.test(text)
  }),
  Config.withDefault("false"),
  Config.map((text) => {
    const value = text.trim().toLowerCase()
    return value === "true" ? 1 : value === "false" ? 0 : Number(value)
  })
)
