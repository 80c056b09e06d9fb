/** An SDK's async-iterable stream as an Effect Stream whose HTTP request is aborted when the stream ends or is interrupted. */
import { Effect, Stream } from "effect"
import { classify, type ProviderError, type ProviderId, type StreamEvent } from "./provider.ts"

export const streamFromSdk = <Chunk>(
  provider: ProviderId,
  open: (signal: AbortSignal) => Promise<AsyncIterable<Chunk>>,
  toEvents: (chunk: Chunk) => ReadonlyArray<StreamEvent>
): Stream.Stream<StreamEvent, ProviderError> =>
  Stream.unwrapScoped(
    Effect.gen(function* () {
      const controller = yield* Effect.acquireRelease(
        Effect.sync(() => new AbortController()),
        (controller) => Effect.sync(() => controller.abort())
      )
      const iterable = yield* Effect.tryPromise({
        try: () => open(controller.signal),
        catch: (cause) => classify(provider, cause)
      })
      return Stream.fromAsyncIterable(iterable, (cause) => classify(provider, cause)).pipe(Stream.mapConcat(toEvents))
    })
  )

export const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64")
