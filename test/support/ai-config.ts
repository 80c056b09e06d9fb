/**
 * The configuration most AI-backed test servers share: the OpenAI wire fake as the only configured
 * provider (Claude is named as the fallback but has no key, so the chain ends after OpenAI), and the
 * breaker and the daily spend cap out of the way, so one test's failures cannot refuse the next.
 */
export const openAiFakeConfig = (openaiUrl: string): Record<string, string> => ({
  OPENAI_API_KEY: "test",
  OPENAI_BASE_URL: openaiUrl,
  AI_PROVIDER_STRATEGY_PRIMARY: "gpt-4o",
  AI_PROVIDER_STRATEGY_FALLBACKS: "claude-sonnet",
  AI_BREAKER_FAILURES: "1000",
  AI_DAILY_SPEND_CAP_MICROS: "0"
})
