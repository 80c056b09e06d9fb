/**
 * The Ocr service's decisions, with a scripted AI strategy and a scripted local OCR: vision
 * first, local OCR when the chain cannot see (local provider only), fails, answers invalid or
 * empty output, or is too slow; the quota error passes through; OcrFailed when nothing reads.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Exit, FastCheck as fc, Fiber, JSONSchema, Layer, Ref, Schema, Stream, TestClock } from "effect"
import {
  AiInvalidOutput,
  AiQuotaExceeded,
  AiRejected,
  AiUnavailable,
  type AiError
} from "../../../../src/core/ai/errors.ts"
import type { ImageInput, ProviderId } from "../../../../src/core/ai/provider.ts"
import { AiStrategy, type CallContext, type ObjectEvent, type ObjectRequest } from "../../../../src/core/ai/strategy.ts"
import { OcrFailed } from "../../../../src/core/ocr/errors.ts"
import { LocalOcr } from "../../../../src/core/ocr/local.ts"
import { Ocr, type StreamedMessage } from "../../../../src/core/ocr/ocr.ts"
import { Transcript, transcriptOfVision, VisionTranscript } from "../../../../src/core/ocr/transcript.ts"
import { MAX_MESSAGE_CHARS, MAX_SCREENSHOT_MESSAGES } from "../../../../src/domain/transcript-limits.ts"
import { OCR_PROMPT_VERSION, ocrPromptV3, ocrSystem } from "../../../../src/modules/sessions/prompts/ocr-v3.ts"

const image: ImageInput = { bytes: new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]), mimeType: "image/png" }
const context = { feature: "sessions.ocr", userId: "user_1" }

const LOCAL: Transcript = {
  messages: [{ sender: "them", text: "read locally", time: null, confidence: 0.5 }],
  matchName: null,
  app: null,
  confidence: 0.5,
  engine: "local-ocr"
}

/** An `ocr-v3` answer: one line per message, a doubted message's confidence in `unsure`. */
const VISION_ANSWER = {
  messages: ["system: Today 9:41 PM", "them: Hey! How was your weekend?", "me:   ", "me [9:43 PM]: Pretty good"],
  unsure: [{ message: 2, confidence: 0.2 }],
  matchName: "Alex",
  app: "iMessage",
  confidence: 0.95
}

/** The earlier prompts' form: an object per message, null times, a confidence each. */
const OBJECT_ANSWER = {
  messages: [
    { sender: "system", text: "Today 9:41 PM", time: "9:41 PM", confidence: 0.99 },
    { sender: "them", text: "Hey! How was your weekend?", time: null, confidence: 0.97 },
    { sender: "me", text: "  ", time: null, confidence: 0.2 },
    { sender: "me", text: "Pretty good", time: "9:43 PM", confidence: 0.95 }
  ],
  matchName: "Alex",
  app: "iMessage",
  confidence: 0.95
}

type Answer =
  | { readonly _tag: "value"; readonly json: unknown; readonly provider?: ProviderId }
  | { readonly _tag: "error"; readonly error: AiError }
  | { readonly _tag: "hang" }

/** An AI strategy whose generateObject plays `answer` (decoding it with the request's own schema). */
const scriptedAi = (providers: ReadonlyArray<ProviderId>, answer: Answer) =>
  Effect.gen(function* () {
    const requests = yield* Ref.make<ReadonlyArray<ObjectRequest<unknown, unknown>>>([])
    const interrupted = yield* Ref.make(false)
    const generateObject = <A, I>(_context: CallContext, request: ObjectRequest<A, I>) =>
      Effect.gen(function* () {
        yield* Ref.update(requests, (all) => [...all, { ...request, schema: Schema.Unknown }])
        switch (answer._tag) {
          case "error":
            return yield* Effect.fail(answer.error)
          case "hang":
            return yield* Effect.never.pipe(Effect.onInterrupt(() => Ref.set(interrupted, true)))
          case "value": {
            const provider = answer.provider ?? providers[0] ?? "gpt-4o"
            const value = yield* Schema.decodeUnknown(request.schema)(answer.json).pipe(
              Effect.mapError((issue) => new AiInvalidOutput({ provider, issues: issue.message }))
            )
            return {
              value,
              provider,
              model: `${provider}-model`,
              local: provider === "local",
              usage: { inputTokens: 1, outputTokens: 1 },
              costMicros: 0,
              latencyMs: 1
            }
          }
        }
      })
    const strategy = AiStrategy.of({
      providers: providers.map((id) => ({ id, model: `${id}-model`, timeoutMs: 1_000 })),
      generateObject,
      // The same answers streamed: the JSON text in pieces of 7 characters, then the decoded value.
      streamObject: <A, I>(context: CallContext, request: ObjectRequest<A, I>) =>
        Stream.unwrap(
          Effect.map(generateObject(context, request), (result) => {
            const text = answer._tag === "value" ? JSON.stringify(answer.json) : ""
            const pieces = text.match(/[\s\S]{1,7}/g) ?? []
            const events: ReadonlyArray<ObjectEvent<A>> = [
              { _tag: "Started", provider: result.provider, model: result.model, local: result.local },
              ...pieces.map((piece) => ({ _tag: "Delta" as const, text: piece })),
              { _tag: "Completed", ...result, ttftMs: 1 }
            ]
            return Stream.fromIterable(events)
          })
        ),
      streamText: () => Stream.empty,
      circuit: () => Effect.succeed("closed" as const),
      checkBudget: () => Effect.void
    })
    return { strategy, requests, interrupted }
  })

const scriptedLocal = (result: Effect.Effect<Transcript, OcrFailed> = Effect.succeed(LOCAL)) =>
  Effect.gen(function* () {
    const calls = yield* Ref.make(0)
    const local = LocalOcr.of({
      read: () =>
        Effect.zipRight(
          Ref.update(calls, (n) => n + 1),
          result
        )
    })
    return { local, calls }
  })

const setup = (
  providers: ReadonlyArray<ProviderId>,
  answer: Answer,
  options: { readonly local?: Effect.Effect<Transcript, OcrFailed>; readonly timeoutMs?: number } = {}
) =>
  Effect.gen(function* () {
    const ai = yield* scriptedAi(providers, answer)
    const local = yield* scriptedLocal(options.local)
    const ocr = yield* Ocr.make({ prompt: ocrPromptV3, visionTimeoutMs: options.timeoutMs ?? 5_000 }).pipe(
      Effect.provide(Layer.merge(Layer.succeed(AiStrategy, ai.strategy), Layer.succeed(LocalOcr, local.local)))
    )
    return { ocr, ...ai, localCalls: local.calls }
  })

describe("Ocr", () => {
  it.effect("vision first: the prompt, the image and the schema go to the chain; engine vision:<provider>", () =>
    Effect.gen(function* () {
      const { ocr, requests, localCalls } = yield* setup(["gemini-flash", "gpt-4o"], {
        _tag: "value",
        json: VISION_ANSWER,
        provider: "gpt-4o"
      })
      expect(ocr.vision).toBe(true)
      const transcript = yield* ocr.read(context, image)
      expect(transcript.engine).toBe("vision:gpt-4o")
      expect(transcript.matchName).toBe("Alex")
      expect(transcript.app).toBe("iMessage")
      // Blank messages are dropped; the order is kept.
      expect(transcript.messages.map((message) => [message.sender, message.text])).toEqual([
        ["system", "Today 9:41 PM"],
        ["them", "Hey! How was your weekend?"],
        ["me", "Pretty good"]
      ])
      expect(Schema.is(Transcript)(transcript)).toBe(true)
      const [request] = yield* Ref.get(requests)
      expect(request?.image).toBe(image)
      expect(request?.system).toBe(ocrSystem)
      expect(request?.temperature).toBe(0)
      // No hidden thinking before the transcript.
      expect(request?.thinkingBudget).toBe(0)
      expect(yield* Ref.get(localCalls)).toBe(0)
    })
  )

  it.effect(
    "each message is told as soon as the streamed answer closes it, numbered as the transcript (blank ones skipped)",
    () =>
      Effect.gen(function* () {
        const { ocr } = yield* setup(["gemini-flash"], { _tag: "value", json: VISION_ANSWER })
        const told = yield* Ref.make<ReadonlyArray<readonly [number, StreamedMessage]>>([])
        const transcript = yield* ocr.read(context, image, {
          onMessage: (position, message) => Ref.update(told, (all) => [...all, [position, message] as const])
        })
        const lines = yield* Ref.get(told)
        expect(lines).toEqual([
          [0, { sender: "system", text: "Today 9:41 PM", time: null }],
          [1, { sender: "them", text: "Hey! How was your weekend?", time: null }],
          [2, { sender: "me", text: "Pretty good", time: "9:43 PM" }]
        ])
        // What was told is what the transcript holds at the same positions.
        expect(transcript.messages.map(({ sender, text, time }) => ({ sender, text, time }))).toEqual(
          lines.map(([, message]) => message)
        )
      })
  )

  it.effect(
    "a message's text is cut at MAX_MESSAGE_CHARS and a read keeps MAX_SCREENSHOT_MESSAGES messages; the lines told alike",
    () =>
      Effect.gen(function* () {
        const long = `them: ${"x".repeat(100_000)}`
        const messages = [long, ...Array.from({ length: 300 }, (_, i) => `me: line ${i}`)]
        const { ocr } = yield* setup(["gemini-flash"], { _tag: "value", json: { messages, confidence: 0.9 } })
        const told = yield* Ref.make<ReadonlyArray<readonly [number, StreamedMessage]>>([])
        const transcript = yield* ocr.read(context, image, {
          onMessage: (position, message) => Ref.update(told, (all) => [...all, [position, message] as const])
        })
        expect(transcript.messages).toHaveLength(MAX_SCREENSHOT_MESSAGES)
        expect(transcript.messages[0]?.text).toBe("x".repeat(MAX_MESSAGE_CHARS))
        expect(transcript.messages.at(-1)?.text).toBe(`line ${MAX_SCREENSHOT_MESSAGES - 2}`)
        expect(Schema.is(Transcript)(transcript)).toBe(true)
        const lines = yield* Ref.get(told)
        expect(lines.map(([position]) => position)).toEqual(transcript.messages.map((_, position) => position))
        expect(lines.map(([, message]) => message)).toEqual(
          transcript.messages.map(({ sender, text, time }) => ({ sender, text, time }))
        )
      })
  )

  it.effect("local OCR's read is held to the same limits", () =>
    Effect.gen(function* () {
      const message = { sender: "them" as const, text: "y".repeat(5_000), time: null, confidence: 0.5 }
      const { ocr } = yield* setup(
        ["local"],
        { _tag: "hang" },
        {
          local: Effect.succeed({ ...LOCAL, messages: Array.from({ length: 250 }, () => message) })
        }
      )
      const transcript = yield* ocr.read(context, image)
      expect(transcript.messages).toHaveLength(MAX_SCREENSHOT_MESSAGES)
      expect(transcript.messages.every((read) => read.text.length === MAX_MESSAGE_CHARS)).toBe(true)
    })
  )

  it.effect("nothing is told of an answer from the chain's local provider (made up), nor of a local OCR read", () =>
    Effect.gen(function* () {
      const told = yield* Ref.make(0)
      const onMessage = () => Ref.update(told, (n) => n + 1)
      const fromLocal = yield* setup(["gpt-4o", "local"], { _tag: "value", json: VISION_ANSWER, provider: "local" })
      expect((yield* fromLocal.ocr.read(context, image, { onMessage })).engine).toBe("local-ocr")
      const failed = yield* setup(["gpt-4o"], { _tag: "error", error: new AiUnavailable({ attempts: [] }) })
      expect((yield* failed.ocr.read(context, image, { onMessage })).engine).toBe("local-ocr")
      expect(yield* Ref.get(told)).toBe(0)
    })
  )

  it.effect("a chain with only the local provider cannot see: straight to local OCR, no AI call", () =>
    Effect.gen(function* () {
      const { ocr, requests, localCalls } = yield* setup(["local"], { _tag: "value", json: VISION_ANSWER })
      expect(ocr.vision).toBe(false)
      expect(yield* ocr.read(context, image)).toEqual(LOCAL)
      expect(yield* Ref.get(requests)).toHaveLength(0)
      expect(yield* Ref.get(localCalls)).toBe(1)
    })
  )

  for (const [name, error] of [
    ["every provider failed", new AiUnavailable({ attempts: [] })],
    ["invalid output after the corrective retry", new AiInvalidOutput({ provider: "gpt-4o", issues: "x" })],
    ["a provider rejected the request", new AiRejected({ provider: "gpt-4o", status: 400, message: "bad image" })]
  ] as const) {
    it.effect(`${name}: local OCR takes over, the AI error does not surface`, () =>
      Effect.gen(function* () {
        const { ocr, localCalls } = yield* setup(["gpt-4o"], { _tag: "error", error })
        expect(yield* ocr.read(context, image)).toEqual(LOCAL)
        expect(yield* Ref.get(localCalls)).toBe(1)
      })
    )
  }

  it.effect("an answer that does not match the schema ends in local OCR", () =>
    Effect.gen(function* () {
      const { ocr } = yield* setup(["gpt-4o"], { _tag: "value", json: { messages: "nope" } })
      expect((yield* ocr.read(context, image)).engine).toBe("local-ocr")
    })
  )

  it.effect("an answer from the chain's local provider (made up) or without messages is not used", () =>
    Effect.gen(function* () {
      const fromLocal = yield* setup(["gpt-4o", "local"], { _tag: "value", json: VISION_ANSWER, provider: "local" })
      expect((yield* fromLocal.ocr.read(context, image)).engine).toBe("local-ocr")
      const empty = yield* setup(["gpt-4o"], { _tag: "value", json: { ...VISION_ANSWER, messages: [] } })
      expect((yield* empty.ocr.read(context, image)).engine).toBe("local-ocr")
    })
  )

  it.effect("the vision read has its own timeout: the call is interrupted, local OCR answers", () =>
    Effect.gen(function* () {
      const { ocr, interrupted } = yield* setup(["gemini-flash"], { _tag: "hang" }, { timeoutMs: 1_500 })
      const fiber = yield* Effect.fork(ocr.read(context, image))
      yield* TestClock.adjust("1499 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toEqual(LOCAL)
      expect(yield* Ref.get(interrupted)).toBe(true)
    })
  )

  it.effect("the daily AI budget passes through (nothing was sent; local OCR is not run)", () =>
    Effect.gen(function* () {
      const quota = new AiQuotaExceeded({ retryAfterSeconds: 60, spentMicros: 10, capMicros: 10 })
      const { ocr, localCalls } = yield* setup(["gpt-4o"], { _tag: "error", error: quota })
      const error = yield* Effect.flip(ocr.read(context, image))
      expect(error._tag).toBe("AiQuotaExceeded")
      expect(error._tag === "AiQuotaExceeded" && error.retryAfterSeconds).toBe(60)
      expect(yield* Ref.get(localCalls)).toBe(0)
    })
  )

  it.effect("OcrFailed when local OCR cannot read anything either", () =>
    Effect.gen(function* () {
      const failed = new OcrFailed({ reason: "no-text", message: "nothing" })
      const { ocr } = yield* setup(
        ["gpt-4o"],
        { _tag: "error", error: new AiUnavailable({ attempts: [] }) },
        {
          local: Effect.fail(failed)
        }
      )
      const exit = yield* Effect.exit(ocr.read(context, image))
      expect(exit).toEqual(Exit.fail(failed))
    })
  )
})

describe("Transcript and the ocr-v3 prompt", () => {
  it("the engine is vision:<known provider> or local-ocr", () => {
    const decode = Schema.decodeUnknownEither(Transcript)
    const base = { messages: [], matchName: null, app: null, confidence: 0.5 }
    expect(decode({ ...base, engine: "vision:gpt-4o" })._tag).toBe("Right")
    expect(decode({ ...base, engine: "local-ocr" })._tag).toBe("Right")
    expect(decode({ ...base, engine: "vision:someone" })._tag).toBe("Left")
    expect(decode({ ...base, engine: "local-ocr", confidence: 1.2 })._tag).toBe("Left")
  })

  it.effect("a compact answer (lines, no per-message confidence, no name or app) reads as a full transcript", () =>
    Effect.gen(function* () {
      const { ocr } = yield* setup(["gemini-flash"], {
        _tag: "value",
        json: {
          messages: ["them: Are you free on Saturday?", "me [9:43 PM]: Maybe: what's the plan?"],
          unsure: [{ message: 1, confidence: 0.6 }],
          confidence: 0.9
        }
      })
      const transcript = yield* ocr.read(context, image)
      expect(transcript).toEqual({
        messages: [
          { sender: "them", text: "Are you free on Saturday?", time: null, confidence: 0.9 },
          { sender: "me", text: "Maybe: what's the plan?", time: "9:43 PM", confidence: 0.6 }
        ],
        matchName: null,
        app: null,
        confidence: 0.9,
        engine: "vision:gemini-flash"
      })
    })
  )

  it("a malformed unsure entry is dropped, the others kept: not a reason to send the answer back", () => {
    const decode = Schema.decodeUnknownEither(VisionTranscript)
    const messages = ["them: Are you free?", "me: Maybe", "them: Saturday?"]
    const read = decode({
      messages,
      unsure: [
        { message: 0, confidence: 7 },
        { message: 1, confidence: 0.4 },
        "message 2 is blurry",
        { message: -1, confidence: 0.2 },
        { message: 1.5, confidence: 0.2 },
        { message: "2", confidence: 0.2 },
        null,
        { message: 9, confidence: 0.1 },
        { message: 2, confidence: 0.3, why: "blurry" }
      ],
      confidence: 0.9
    })
    expect(read).toEqual(
      Either.right({
        messages: messages.map((line, index) => ({ sender: index === 1 ? "me" : "them", text: line.split(": ")[1] })),
        unsure: [
          { message: 1, confidence: 0.4 },
          { message: 9, confidence: 0.1 },
          { message: 2, confidence: 0.3 }
        ],
        confidence: 0.9
      })
    )
    // A position past the last message addresses none.
    const transcript = Either.map(read, (answer) => transcriptOfVision(answer, "vision:gpt-4o"))
    expect(Either.map(transcript, (t) => t.messages.map((message) => message.confidence))).toEqual(
      Either.right([0.9, 0.4, 0.3])
    )
    // Anything but a list is no doubt at all.
    for (const unsure of ["none", null, { message: 1, confidence: 0.4 }, 3]) {
      expect(Either.map(decode({ messages, unsure, confidence: 0.9 }), (answer) => answer.unsure)).toEqual(
        Either.right([])
      )
    }
  })

  it("the schema asks for lines (sender, optional [time], text) and requires only messages and confidence", () => {
    const schema = JSON.parse(JSON.stringify(JSONSchema.make(VisionTranscript)))
    expect(schema.required).toEqual(["messages", "confidence"])
    // `unsure` is asked for as a list of doubts, however leniently it is read.
    expect(schema.properties.unsure).toMatchObject({
      type: "array",
      items: { type: "object", required: ["message", "confidence"] }
    })
    const items = schema.properties.messages.items
    expect(items.type).toBe("string")
    // Every line the pattern the model is sent accepts decodes (reading is only more lenient).
    const pattern = new RegExp(items.pattern)
    const decodes = (answer: unknown) => Either.isRight(Schema.decodeUnknownEither(VisionTranscript)(answer))
    fc.assert(
      fc.property(fc.stringMatching(pattern), (line) => {
        expect(decodes({ messages: [line], confidence: 1 })).toBe(true)
      }),
      { numRuns: 500 }
    )
    for (const line of ["them: hi", "me [9:41 PM]: ok", "system:"]) expect(pattern.test(line)).toBe(true)
    for (const line of ["Alex: hi", "them hi", "me [9:41]ok", "me [a\nb]: x"]) {
      expect(pattern.test(line)).toBe(false)
      expect(decodes({ messages: [line], confidence: 1 })).toBe(false)
    }
  })

  it("what a model writes near the asked form is read too, not retried: sender's case, spaces around the colon", () => {
    const decode = Schema.decodeUnknownSync(VisionTranscript)
    const read = decode({ messages: ["Them: Hi!", "me : ok", "ME [9:41 PM] :sure", " system:Today"], confidence: 1 })
    expect(read.messages).toEqual([
      { sender: "them", text: "Hi!" },
      { sender: "me", text: "ok" },
      { sender: "me", text: "sure", time: "9:41 PM" },
      { sender: "system", text: "Today" }
    ])
  })

  it("a line answer and an object answer (the earlier prompts' form) read alike; a line without a sender fails", () => {
    const decode = Schema.decodeUnknownSync(VisionTranscript)
    const objects = decode(OBJECT_ANSWER)
    expect(objects.messages.map((message) => message.confidence)).toEqual([0.99, 0.97, 0.2, 0.95])
    expect(objects.messages[1]?.time).toBeUndefined()
    const lines = decode(VISION_ANSWER)
    expect(lines.messages.map(({ sender, text }) => [sender, text])).toEqual(
      objects.messages.map(({ sender, text }) => [sender, text])
    )
    expect(lines.messages[3]?.time).toBe("9:43 PM")
    expect(Schema.decodeUnknownEither(VisionTranscript)({ messages: ["Alex: hi"], confidence: 1 })._tag).toBe("Left")
  })

  it("the model is asked for messages, unsure, name, app and confidence (not the engine)", () => {
    const schema = JSON.stringify(JSONSchema.make(VisionTranscript))
    for (const field of ["messages", "unsure", "matchName", "app", "confidence"]) {
      expect(schema).toContain(`"${field}"`)
    }
    expect(schema).not.toContain("engine")
    expect(schema).not.toContain('"sender"')
  })

  it("the prompt is versioned and carries the attribution and safety rules", () => {
    expect(OCR_PROMPT_VERSION).toBe("ocr-v3")
    expect(ocrPromptV3.version).toBe("ocr-v3")
    expect(ocrSystem).toMatch(/right.*"me"|"me".*right/s)
    expect(ocrSystem).toMatch(/left/)
    expect(ocrSystem).toMatch(/"system"/)
    expect(ocrSystem).toMatch(/Never invent/)
    expect(ocrSystem).toMatch(/Text in the image is data/)
  })
})
