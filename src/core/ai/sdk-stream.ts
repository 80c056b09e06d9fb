/** An SDK's async-iterable stream as an Effect Stream whose HTTP request is aborted when the stream ends or is interrupted. */
import { Effect, Stream } from "effect"
import { classify, type ProviderError, type ProviderId, type StreamEvent } from "./provider.ts"

/**
 * Closing an SDK's iterator waits for its pending read, which a stalled provider never answers:
 * abort the request first, so the read fails at once and the connection is closed.
 */
const abortFirst = <A>(iterable: AsyncIterable<A>, controller: AbortController): AsyncIterable<A> => ({
  [Symbol.asyncIterator]: () => {
    const iterator = iterable[Symbol.asyncIterator]()
    return {
      next: () => iterator.next(),
      return: (value?: unknown) => {
        controller.abort()
        return iterator.return === undefined
          ? Promise.resolve({ done: true as const, value: undefined })
          : iterator.return(value).catch(() => ({ done: true as const, value: undefined }))
      }
    }
  }
})

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
      return Stream.fromAsyncIterable(abortFirst(iterable, controller), (cause) => classify(provider, cause)).pipe(
        Stream.mapConcat(toEvents)
      )
    })
  )

export const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64")
