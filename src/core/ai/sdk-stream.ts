/** An SDK's async-iterable stream as an Effect Stream whose HTTP request is aborted when the stream ends or is interrupted. */
import { Effect, Stream } from "effect"
import { classify, ProviderError, type ProviderId, type StreamEvent } from "./provider.ts"

/** The abort reason of a request whose stream went quiet for longer than the provider's timeout. */
const QUIET = new Error("the provider sent nothing for longer than its timeout")

/**
 * Closing an SDK's iterator waits for its pending read, which a stalled provider never answers:
 * abort the request first, so the read fails at once and the connection is closed. Each read
 * waits at most `quietMs` (a plain timer: a timeout Effect around every pull cost ~0.1 ms of CPU
 * per delta), then the request is aborted with `QUIET` as its reason.
 */
const abortFirst = <A>(iterable: AsyncIterable<A>, controller: AbortController, quietMs: number): AsyncIterable<A> => ({
  [Symbol.asyncIterator]: () => {
    const iterator = iterable[Symbol.asyncIterator]()
    return {
      next: () => {
        const timer = setTimeout(() => controller.abort(QUIET), quietMs)
        return iterator.next().finally(() => clearTimeout(timer))
      },
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
  quietMs: number,
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
      const quiet = () =>
        new ProviderError({ provider, kind: "timeout", message: `Nothing streamed for ${quietMs} ms` })
      return Stream.fromAsyncIterable(abortFirst(iterable, controller, quietMs), (cause) =>
        controller.signal.reason === QUIET ? quiet() : classify(provider, cause)
      ).pipe(
        Stream.mapConcat(toEvents),
        // An SDK may end its iteration quietly when its request is aborted (OpenAI's does): that is
        // the timeout, not the end of the answer.
        Stream.concat(Stream.suspend(() => (controller.signal.reason === QUIET ? Stream.fail(quiet()) : Stream.empty)))
      )
    })
  )

export const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64")
