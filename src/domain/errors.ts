/**
 * The error catalog: every failure the API can answer with, as a `Schema.TaggedError`, its
 * stable wire `code` and its HTTP status. On the wire each one is the seed's envelope
 * `{ success: false, error: { code, message, details? } }`; `ErrorEnvelope(Class)` is that
 * wire form, given to `addError` so that handlers, OpenAPI and typed clients agree.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import { HttpApiDecodeError } from "@effect/platform/HttpApiError"
import { Schema } from "effect"

const errorFields = {
  message: Schema.String,
  details: Schema.optional(Schema.Unknown)
}

/** The request did not match its schema (payload, path, query or headers). */
export class ValidationError extends Schema.TaggedError<ValidationError>()("ValidationError", errorFields) {}
/** The request could not be read (broken body, unsupported encoding). */
export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", errorFields) {}
/** The body is not valid JSON. */
export class InvalidJson extends Schema.TaggedError<InvalidJson>()("InvalidJson", errorFields) {}
/** A webhook whose signature is missing, wrong or stale; nothing was processed. */
export class InvalidSignature extends Schema.TaggedError<InvalidSignature>()("InvalidSignature", errorFields) {}
/** Missing, malformed, expired or otherwise unacceptable credentials. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", errorFields) {}
/**
 * The account's erasure started: how every transport refuses it, whether at the start of a
 * request or in the middle of one (a generation whose user was erased meanwhile).
 */
export const accountErased = () =>
  new Unauthorized({ message: "This account was erased", details: { reason: "account-erased" } })
/** Authenticated, but not allowed to do this. */
export class Forbidden extends Schema.TaggedError<Forbidden>()("Forbidden", errorFields) {}
/** The resource does not exist (or is not the caller's). */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", errorFields) {}
/** No route matches the method and path. */
export class RouteNotFound extends Schema.TaggedError<RouteNotFound>()("RouteNotFound", errorFields) {}
/** The state of the resource forbids the operation (duplicate, already used, …). */
export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", errorFields) {}
/** The body is larger than the server accepts. */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", errorFields) {}
/** The request (headers and body) did not arrive in time: a slow or stalled client. */
export class RequestTimeout extends Schema.TaggedError<RequestTimeout>()("RequestTimeout", errorFields) {}
/** The request line and headers are larger than the server reads. */
export class HeadersTooLarge extends Schema.TaggedError<HeadersTooLarge>()("HeadersTooLarge", errorFields) {}
/** An `Expect` request header other than `100-continue` (the only expectation the server meets). */
export class ExpectationFailed extends Schema.TaggedError<ExpectationFailed>()("ExpectationFailed", errorFields) {}
/** The media type is not accepted. */
export class UnsupportedMediaType extends Schema.TaggedError<UnsupportedMediaType>()(
  "UnsupportedMediaType",
  errorFields
) {}
/** A signed URL (local storage) whose signature does not match what it grants. */
export class UrlSignatureInvalid extends Schema.TaggedError<UrlSignatureInvalid>()(
  "UrlSignatureInvalid",
  errorFields
) {}
/** A signed URL past its expiry. */
export class UrlExpired extends Schema.TaggedError<UrlExpired>()("UrlExpired", errorFields) {}
/** An upload URL takes one PUT: its object was already written (and maybe verified, used or deleted since). */
export class UrlAlreadyUsed extends Schema.TaggedError<UrlAlreadyUsed>()("UrlAlreadyUsed", errorFields) {}
/** The body's length differs from the length signed into the upload URL. */
export class ContentLengthMismatch extends Schema.TaggedError<ContentLengthMismatch>()(
  "ContentLengthMismatch",
  errorFields
) {}
/** The upload's bytes have not reached storage (yet): PUT them to the upload URL first. */
export class UploadNotReceived extends Schema.TaggedError<UploadNotReceived>()("UploadNotReceived", errorFields) {}
/** The upload URL expired and nothing was uploaded: ask for a new upload. */
export class UploadExpired extends Schema.TaggedError<UploadExpired>()("UploadExpired", errorFields) {}
/** The upload was already used by another session or opener. */
export class UploadAlreadyUsed extends Schema.TaggedError<UploadAlreadyUsed>()("UploadAlreadyUsed", errorFields) {}
/** The stored object's size differs from the declared size. */
export class UploadSizeMismatch extends Schema.TaggedError<UploadSizeMismatch>()("UploadSizeMismatch", errorFields) {}
/** The stored object's content type differs from the declared type. */
export class UploadTypeMismatch extends Schema.TaggedError<UploadTypeMismatch>()("UploadTypeMismatch", errorFields) {}
/** The stored bytes are not an image of the declared format (checked by their magic bytes). */
export class UploadContentMismatch extends Schema.TaggedError<UploadContentMismatch>()(
  "UploadContentMismatch",
  errorFields
) {}
/** The upload was declared for another purpose (a profile screenshot used as a chat, or the reverse). */
export class UploadPurposeMismatch extends Schema.TaggedError<UploadPurposeMismatch>()(
  "UploadPurposeMismatch",
  errorFields
) {}
/** The image has more pixels than the server decodes (a decompression bomb, or simply too big). */
export class ImageTooLarge extends Schema.TaggedError<ImageTooLarge>()("ImageTooLarge", errorFields) {}
/** The image cannot be decoded: corrupt, truncated, or not an image at all. */
export class ImageUnreadable extends Schema.TaggedError<ImageUnreadable>()("ImageUnreadable", errorFields) {}
/** The profile states or implies a minor, or the request asks for what the safety policy refuses. */
export class SafetyBlocked extends Schema.TaggedError<SafetyBlocked>()("SafetyBlocked", errorFields) {}
/** A daily quota (generations, or AI spend) is used up; `Retry-After` says when it resets. */
export class QuotaExceeded extends Schema.TaggedError<QuotaExceeded>()("QuotaExceeded", errorFields) {}
/** Every AI provider failed or was skipped; `details.attempts` says how each did. */
export class AiUnavailable extends Schema.TaggedError<AiUnavailable>()("AiUnavailable", errorFields) {}
/** The AI provider refused the request itself (another provider would too). */
export class AiRequestRejected extends Schema.TaggedError<AiRequestRejected>()("AiRequestRejected", errorFields) {}
/** The AI answer did not match the expected shape, even after a corrective retry. */
export class AiInvalidOutput extends Schema.TaggedError<AiInvalidOutput>()("AiInvalidOutput", errorFields) {}
/**
 * The AI answered, but nothing it wrote could be kept (no line, or every line unsafe, a repeat or
 * too long), even after one more try: nothing was saved and nothing is counted.
 */
export class AiEmptyResult extends Schema.TaggedError<AiEmptyResult>()("AiEmptyResult", errorFields) {}
/** No text could be read from a screenshot (blank, no chat, or the OCR engines failed). */
export class OcrUnreadable extends Schema.TaggedError<OcrUnreadable>()("OcrUnreadable", errorFields) {}
/** An `Idempotency-Key` already used with another request body (or Accept mode) by this user, on this operation. */
export class IdempotencyKeyReused extends Schema.TaggedError<IdempotencyKeyReused>()(
  "IdempotencyKeyReused",
  errorFields
) {}
/** The first request with this `Idempotency-Key` is still running; `Retry-After` says when to ask again. */
export class IdempotencyKeyInFlight extends Schema.TaggedError<IdempotencyKeyInFlight>()(
  "IdempotencyKeyInFlight",
  errorFields
) {}
/** Too many requests in the current window. */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", errorFields) {}
/** A dependency (database, cache) is not reachable. */
export class ServiceUnavailable extends Schema.TaggedError<ServiceUnavailable>()("ServiceUnavailable", errorFields) {}
/** A bug or an unexpected failure; details are logged, never sent. */
export class InternalError extends Schema.TaggedError<InternalError>()("InternalError", errorFields) {}

/** Every `code` the API can send, with its HTTP status and the error class it belongs to. */
export const ErrorCatalog = {
  VALIDATION_ERROR: { status: 400, error: ValidationError },
  BAD_REQUEST: { status: 400, error: BadRequest },
  INVALID_JSON: { status: 400, error: InvalidJson },
  INVALID_SIGNATURE: { status: 400, error: InvalidSignature },
  UNAUTHORIZED: { status: 401, error: Unauthorized },
  FORBIDDEN: { status: 403, error: Forbidden },
  NOT_FOUND: { status: 404, error: NotFound },
  ROUTE_NOT_FOUND: { status: 404, error: RouteNotFound },
  CONFLICT: { status: 409, error: Conflict },
  PAYLOAD_TOO_LARGE: { status: 413, error: PayloadTooLarge },
  REQUEST_TIMEOUT: { status: 408, error: RequestTimeout },
  HEADERS_TOO_LARGE: { status: 431, error: HeadersTooLarge },
  EXPECTATION_FAILED: { status: 417, error: ExpectationFailed },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, error: UnsupportedMediaType },
  URL_SIGNATURE_INVALID: { status: 403, error: UrlSignatureInvalid },
  URL_EXPIRED: { status: 403, error: UrlExpired },
  URL_ALREADY_USED: { status: 412, error: UrlAlreadyUsed },
  CONTENT_LENGTH_MISMATCH: { status: 400, error: ContentLengthMismatch },
  UPLOAD_NOT_RECEIVED: { status: 409, error: UploadNotReceived },
  UPLOAD_EXPIRED: { status: 410, error: UploadExpired },
  UPLOAD_ALREADY_USED: { status: 409, error: UploadAlreadyUsed },
  UPLOAD_SIZE_MISMATCH: { status: 422, error: UploadSizeMismatch },
  UPLOAD_TYPE_MISMATCH: { status: 422, error: UploadTypeMismatch },
  UPLOAD_CONTENT_MISMATCH: { status: 422, error: UploadContentMismatch },
  UPLOAD_PURPOSE_MISMATCH: { status: 422, error: UploadPurposeMismatch },
  IMAGE_TOO_LARGE: { status: 422, error: ImageTooLarge },
  IMAGE_UNREADABLE: { status: 422, error: ImageUnreadable },
  SAFETY_BLOCKED: { status: 422, error: SafetyBlocked },
  AI_REQUEST_REJECTED: { status: 422, error: AiRequestRejected },
  OCR_FAILED: { status: 422, error: OcrUnreadable },
  IDEMPOTENCY_KEY_REUSED: { status: 422, error: IdempotencyKeyReused },
  IDEMPOTENCY_KEY_IN_FLIGHT: { status: 409, error: IdempotencyKeyInFlight },
  RATE_LIMITED: { status: 429, error: RateLimited },
  QUOTA_EXCEEDED: { status: 429, error: QuotaExceeded },
  AI_INVALID_OUTPUT: { status: 502, error: AiInvalidOutput },
  AI_EMPTY_RESULT: { status: 502, error: AiEmptyResult },
  AI_UNAVAILABLE: { status: 503, error: AiUnavailable },
  INTERNAL_ERROR: { status: 500, error: InternalError },
  SERVICE_UNAVAILABLE: { status: 503, error: ServiceUnavailable }
} as const

export type ErrorCode = keyof typeof ErrorCatalog

/** Any error the API answers with: the catalog's tagged errors as one union. */
export type AppError = InstanceType<(typeof ErrorCatalog)[ErrorCode]["error"]>

/** The same union as a schema (decodes any of them by its `_tag`). */
export const AppError = Schema.Union(...Object.values(ErrorCatalog).map((entry) => entry.error))

interface ErrorClass<Self> {
  new (props: { readonly message: string; readonly details?: unknown }): Self
  readonly _tag: string
}

type CodeOf<Self> = {
  [C in ErrorCode]: InstanceType<(typeof ErrorCatalog)[C]["error"]> extends Self ? C : never
}[ErrorCode]

/** The encoded side of every error: the seed's failure envelope. */
export const ErrorBody = <const Code extends string>(code: Code) =>
  Schema.Struct({
    success: Schema.Literal(false),
    error: Schema.Struct({
      code: Schema.Literal(code),
      message: Schema.String,
      details: Schema.optional(Schema.Unknown)
    })
  })

/**
 * The wire form of an error class: the envelope on the wire, the class in handlers and typed
 * clients, the status from the catalog (shown in OpenAPI).
 */
export const ErrorEnvelope = <Self extends { readonly message: string; readonly details?: unknown }, I>(
  errorClass: ErrorClass<Self> & Schema.Schema<Self, I>,
  code: CodeOf<Self>
) =>
  Schema.transform(ErrorBody(code), Schema.typeSchema(errorClass), {
    strict: true,
    decode: ({ error }) =>
      new errorClass(
        error.details === undefined ? { message: error.message } : { message: error.message, details: error.details }
      ),
    encode: (e) => ({
      success: false as const,
      error: e.details === undefined ? { code, message: e.message } : { code, message: e.message, details: e.details }
    })
  }).annotations({
    ...HttpApiSchema.annotations({ status: ErrorCatalog[code].status }),
    identifier: `${errorClass._tag}Envelope`,
    description: `${ErrorCatalog[code].status} ${code}`
  })

/** One problem found while decoding a request: where, and what is wrong. */
export const ValidationIssue = Schema.Struct({
  path: Schema.String,
  message: Schema.String
})
export type ValidationIssue = typeof ValidationIssue.Type

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.map((segment) => (typeof segment === "symbol" ? segment.toString() : String(segment))).join(".")

/** At most this many issues are listed (a list of 100,000 wrong items is not 100,000 issues). */
export const MAX_ISSUES = 20
/** A value quoted in a message, or a path, is cut to a short prefix: an 8 MB field never comes back. */
const MAX_VALUE_CHARS = 64
const MAX_TEXT_CHARS = 200

/** The first `max` characters and "…" (never half of a surrogate pair). */
const clip = (text: string, max: number): string => {
  if (text.length <= max) return text
  const end = /[\uD800-\uDBFF]/.test(text.charAt(max - 1)) ? max - 1 : max
  return `${text.slice(0, end)}…`
}

const ACTUAL = ", actual "

/** The formatters quote the value after ", actual ": that part keeps a short prefix only. */
const boundedMessage = (message: string): string => {
  const at = message.indexOf(ACTUAL)
  if (at === -1) return clip(message, MAX_TEXT_CHARS)
  return clip(message.slice(0, at), MAX_TEXT_CHARS) + ACTUAL + clip(message.slice(at + ACTUAL.length), MAX_VALUE_CHARS)
}

/** A multi-line report (a `TreeFormatter` tree, as RPC sends decode failures): each line bounded, and the whole. */
export const boundedReport = (report: string): string =>
  clip(
    report
      .split("\n", MAX_ISSUES * 8)
      .map(boundedMessage)
      .join("\n"),
    MAX_TEXT_CHARS * MAX_ISSUES
  )

/**
 * A union reports each member that failed: `Expected "me", actual "x"`, `Expected "them", actual
 * "x"`… Said once: `Expected "me", "them" or "system", actual "x"`. Messages of another form are
 * joined with "; ".
 */
const joinMessages = (messages: ReadonlyArray<string>): string => {
  const parsed = messages.map((message) => {
    const at = message.indexOf(ACTUAL)
    return message.startsWith("Expected ") && at !== -1
      ? { expected: message.slice("Expected ".length, at), actual: message.slice(at + ACTUAL.length) }
      : undefined
  })
  const first = parsed[0]
  if (messages.length < 2 || first === undefined || parsed.some((p) => p === undefined || p.actual !== first.actual)) {
    return messages.join("; ")
  }
  const expected = parsed.flatMap((p) => (p === undefined ? [] : [p.expected]))
  return `Expected ${expected.slice(0, -1).join(", ")} or ${expected.at(-1) ?? ""}${ACTUAL}${first.actual}`
}

const TREE_LINE = /^((?:[│ ] {2})*)[└├]─ (.*)$/
const PATH_SEGMENT = /^\[(.*)\]$/

/** A JSON key or index of a `TreeFormatter` path line (`["limit"]`, `[0]`); undefined for other lines. */
const segmentOf = (text: string): PropertyKey | undefined => {
  const inner = PATH_SEGMENT.exec(text)?.[1]
  if (inner === undefined) return undefined
  if (/^\d+$/.test(inner)) return Number(inner)
  try {
    const key: unknown = JSON.parse(inner)
    return typeof key === "string" ? key : undefined
  } catch {
    return undefined
  }
}

/**
 * A decode failure as RPC sends it (the `TreeFormatter` report: the schema, then a tree of
 * members, refinements and sides) said as REST says it: one `path: message` per field, the union
 * members' messages said once, the schema's description and the inner nodes left out. A report
 * that is not such a tree is only bounded.
 */
export const conciseReport = (report: string): string => {
  const lines = report.split("\n", MAX_ISSUES * 8)
  const nodes: Array<{ depth: number; text: string }> = []
  for (const line of lines.slice(1)) {
    const match = TREE_LINE.exec(line)
    const last = nodes.at(-1)
    if (match !== null) nodes.push({ depth: (match[1] ?? "").length / 3, text: match[2] ?? "" })
    else if (last !== undefined) last.text += ` ${line.trim()}`
  }
  const issues: Array<{ path: ReadonlyArray<PropertyKey>; message: string }> = []
  const stack: Array<{ depth: number; text: string }> = []
  nodes.forEach((node, i) => {
    while ((stack.at(-1)?.depth ?? -1) >= node.depth) stack.pop()
    stack.push(node)
    const next = nodes[i + 1]
    if (next !== undefined && next.depth > node.depth) return
    const path = stack.flatMap((n) => {
      const segment = segmentOf(n.text)
      return segment === undefined ? [] : [segment]
    })
    issues.push({ path, message: node.text })
  })
  if (issues.length === 0) return boundedReport(report)
  const { issues: listed, omittedIssues } = issuesByPath(issues)
  const said = listed.map((issue) => (issue.path === "" ? issue.message : `${issue.path}: ${issue.message}`))
  return (
    `The payload is invalid: ${said.join("; ")}` + (omittedIssues === undefined ? "" : ` (and ${omittedIssues} more)`)
  )
}

/**
 * One issue per field (a union reports each failed member; said once), at most
 * `MAX_ISSUES` of them, values cut short (`omittedIssues` counts the rest): REST, RPC and the socket
 * all say it so.
 */
export const issuesByPath = (
  issues: ReadonlyArray<{ readonly path: ReadonlyArray<PropertyKey>; readonly message: string }>
): { readonly issues: Array<ValidationIssue>; readonly omittedIssues?: number } => {
  const byPath = new Map<string, Array<string>>()
  for (const issue of issues) {
    const path = clip(formatPath(issue.path), MAX_TEXT_CHARS)
    const messages = byPath.get(path) ?? []
    const message = boundedMessage(issue.message)
    if (!messages.includes(message) && messages.length < 8) messages.push(message)
    byPath.set(path, messages)
  }
  // A nullable or optional value that fails also reports "Expected null" / "Expected undefined":
  // noise when a real problem is named (for the field, or for another field).
  const isNoise = (message: string) => /^Expected (null|undefined), actual /.test(message)
  const all = Array.from(byPath, ([path, messages]) => {
    const informative = messages.filter((message) => !isNoise(message))
    return { path, message: joinMessages(informative.length > 0 ? informative : messages) }
  })
  const informative = all.filter((issue) => !isNoise(issue.message))
  const listed = informative.length > 0 ? informative : all
  return listed.length > MAX_ISSUES
    ? { issues: listed.slice(0, MAX_ISSUES), omittedIssues: listed.length - MAX_ISSUES }
    : { issues: listed }
}

/**
 * The framework reports every request decode failure as `HttpApiDecodeError`; this is its wire
 * form, a 400 `VALIDATION_ERROR` envelope with one `{ path, message }` per problem.
 */
export const DecodeErrorEnvelope = Schema.transform(
  Schema.Struct({
    success: Schema.Literal(false),
    error: Schema.Struct({
      code: Schema.Literal("VALIDATION_ERROR"),
      message: Schema.String,
      details: Schema.Struct({
        issues: Schema.Array(ValidationIssue),
        /** Issues beyond the first MAX_ISSUES, not listed. */
        omittedIssues: Schema.optional(Schema.Int)
      })
    })
  }),
  Schema.typeSchema(HttpApiDecodeError),
  {
    strict: true,
    decode: ({ error }) =>
      new HttpApiDecodeError({
        message: error.message,
        issues: error.details.issues.map((issue) => ({
          _tag: "Type" as const,
          path: issue.path === "" ? [] : issue.path.split("."),
          message: issue.message
        }))
      }),
    encode: (e) => ({
      success: false as const,
      error: {
        code: "VALIDATION_ERROR" as const,
        message: "The request is invalid: see details.issues",
        details: issuesByPath(e.issues)
      }
    })
  }
).annotations({
  ...HttpApiSchema.annotations({ status: 400 }),
  identifier: "ValidationErrorEnvelope",
  description: "400 VALIDATION_ERROR: the request did not match its schema"
})

/** Every framework-level failure, shared by all groups. */
export const InternalErrorEnvelope = ErrorEnvelope(InternalError, "INTERNAL_ERROR")
export const UnauthorizedEnvelope = ErrorEnvelope(Unauthorized, "UNAUTHORIZED")
export const NotFoundEnvelope = ErrorEnvelope(NotFound, "NOT_FOUND")
export const ConflictEnvelope = ErrorEnvelope(Conflict, "CONFLICT")
export const ServiceUnavailableEnvelope = ErrorEnvelope(ServiceUnavailable, "SERVICE_UNAVAILABLE")
export const RateLimitedEnvelope = ErrorEnvelope(RateLimited, "RATE_LIMITED")
export const PayloadTooLargeEnvelope = ErrorEnvelope(PayloadTooLarge, "PAYLOAD_TOO_LARGE")
export const InvalidJsonEnvelope = ErrorEnvelope(InvalidJson, "INVALID_JSON")
export const BadRequestEnvelope = ErrorEnvelope(BadRequest, "BAD_REQUEST")
export const InvalidSignatureEnvelope = ErrorEnvelope(InvalidSignature, "INVALID_SIGNATURE")
export const UnsupportedMediaTypeEnvelope = ErrorEnvelope(UnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE")
export const RouteNotFoundEnvelope = ErrorEnvelope(RouteNotFound, "ROUTE_NOT_FOUND")
export const UrlSignatureInvalidEnvelope = ErrorEnvelope(UrlSignatureInvalid, "URL_SIGNATURE_INVALID")
export const UrlExpiredEnvelope = ErrorEnvelope(UrlExpired, "URL_EXPIRED")
export const ContentLengthMismatchEnvelope = ErrorEnvelope(ContentLengthMismatch, "CONTENT_LENGTH_MISMATCH")
export const UploadNotReceivedEnvelope = ErrorEnvelope(UploadNotReceived, "UPLOAD_NOT_RECEIVED")
export const UploadExpiredEnvelope = ErrorEnvelope(UploadExpired, "UPLOAD_EXPIRED")
export const UploadAlreadyUsedEnvelope = ErrorEnvelope(UploadAlreadyUsed, "UPLOAD_ALREADY_USED")
export const UploadSizeMismatchEnvelope = ErrorEnvelope(UploadSizeMismatch, "UPLOAD_SIZE_MISMATCH")
export const UploadTypeMismatchEnvelope = ErrorEnvelope(UploadTypeMismatch, "UPLOAD_TYPE_MISMATCH")
export const UploadContentMismatchEnvelope = ErrorEnvelope(UploadContentMismatch, "UPLOAD_CONTENT_MISMATCH")
export const UploadPurposeMismatchEnvelope = ErrorEnvelope(UploadPurposeMismatch, "UPLOAD_PURPOSE_MISMATCH")
export const ImageTooLargeEnvelope = ErrorEnvelope(ImageTooLarge, "IMAGE_TOO_LARGE")
export const ImageUnreadableEnvelope = ErrorEnvelope(ImageUnreadable, "IMAGE_UNREADABLE")
export const SafetyBlockedEnvelope = ErrorEnvelope(SafetyBlocked, "SAFETY_BLOCKED")
export const QuotaExceededEnvelope = ErrorEnvelope(QuotaExceeded, "QUOTA_EXCEEDED")
export const AiUnavailableEnvelope = ErrorEnvelope(AiUnavailable, "AI_UNAVAILABLE")
export const AiRequestRejectedEnvelope = ErrorEnvelope(AiRequestRejected, "AI_REQUEST_REJECTED")
export const AiInvalidOutputEnvelope = ErrorEnvelope(AiInvalidOutput, "AI_INVALID_OUTPUT")
export const AiEmptyResultEnvelope = ErrorEnvelope(AiEmptyResult, "AI_EMPTY_RESULT")
export const OcrUnreadableEnvelope = ErrorEnvelope(OcrUnreadable, "OCR_FAILED")
export const IdempotencyKeyReusedEnvelope = ErrorEnvelope(IdempotencyKeyReused, "IDEMPOTENCY_KEY_REUSED")
export const IdempotencyKeyInFlightEnvelope = ErrorEnvelope(IdempotencyKeyInFlight, "IDEMPOTENCY_KEY_IN_FLIGHT")

/**
 * The catalog code of an error (for places that write the envelope themselves, like SSE); an
 * infrastructure failure (DbError, StorageError, …) has none: INTERNAL_ERROR.
 */
export const codeOf = (error: AppError | { readonly _tag: string }): ErrorCode =>
  (Object.keys(ErrorCatalog) as Array<ErrorCode>).find((code) => ErrorCatalog[code].error._tag === error._tag) ??
  "INTERNAL_ERROR"
