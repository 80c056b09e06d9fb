/**
 * The README's REST flows written with `openapi-fetch` on the types `openapi-typescript` generates
 * from `/openapi.json`, with no cast: what an app team gets from the document. Not compiled by the
 * project's typecheck (its `./wingmate-openapi.ts` is generated); test/unit/contract/
 * openapi-typescript.test.ts generates it and type-checks this file strictly, failing on any error.
 */
import createClient from "openapi-fetch"
import type { paths } from "./wingmate-openapi.ts"

export const readmeFlows = async (baseUrl: string, token: string, screenshot: Blob) => {
  // A JSON client: the streamed operations' text/event-stream answers are for an SSE client.
  const api = createClient<paths, "application/json">({ baseUrl, headers: { Authorization: `Bearer ${token}` } })

  // Authentication: the caller.
  const me = await api.GET("/api/v1/users/me")
  if (me.error) return me.error.error.code
  const firstName: string | null = me.data.data.firstName
  await api.PATCH("/api/v1/users/me", { body: { defaultTone: "witty", lastName: null } })

  // Uploads: a ticket, the bytes sent as it says, then the status.
  const ticket = await api.POST("/api/v1/uploads", {
    body: { contentType: "image/png", contentLength: screenshot.size, purpose: "session" }
  })
  if (ticket.error) return ticket.error.error.code
  const { uploadId, url, method, headers } = ticket.data.data
  await fetch(url, { method, headers, body: screenshot })
  const upload = await api.GET("/api/v1/uploads/{uploadId}", { params: { path: { uploadId } } })
  const status: "pending" | "verified" | "rejected" | "expired" | "used" | undefined = upload.data?.data.status

  // Matches and Magic Openers.
  const match = await api.POST("/api/v1/matches", {
    body: { name: "Sam", bio: "Climber, coffee snob", interests: ["climbing"] }
  })
  if (match.error) return match.error.error.code
  const matchId = match.data.data.id
  const page = await api.GET("/api/v1/matches", { params: { query: { limit: 20 } } })
  const nextCursor: string | null | undefined = page.data?.data.nextCursor
  await api.PATCH("/api/v1/matches/{matchId}", { params: { path: { matchId } }, body: { notes: null } })
  const generated = await api.POST("/api/v1/magic-openers/generate", { body: { matchId, count: 2 } })
  if (generated.error) return generated.error.error.code
  const opener = generated.data.data.openers[0]
  const openers = await api.GET("/api/v1/magic-openers", { params: { query: { matchId, limit: 10 } } })
  if (opener !== undefined) {
    await api.POST("/api/v1/magic-openers/{openerId}/like", { params: { path: { openerId: opener.id } } })
    // The dislike's body is optional: none, or a reason.
    await api.POST("/api/v1/magic-openers/{openerId}/dislike", { params: { path: { openerId: opener.id } } })
    await api.POST("/api/v1/magic-openers/{openerId}/dislike", {
      params: { path: { openerId: opener.id } },
      body: { reason: "too cheesy" }
    })
  }

  // Sessions: created (202), read, listed by match, fixed, regenerated, cancelled, deleted.
  const created = await api.POST("/api/v1/sessions", { body: { uploadIds: [uploadId], matchId, tone: "witty" } })
  if (created.error) return created.error.error.code
  const sessionId = created.data.data.id
  const session = await api.GET("/api/v1/sessions/{sessionId}", { params: { path: { sessionId } } })
  const transcript = session.data?.data.transcript ?? []
  const sessions = await api.GET("/api/v1/sessions", { params: { query: { matchId, limit: 5 } } })
  await api.PATCH("/api/v1/sessions/{sessionId}/transcript", {
    params: { path: { sessionId } },
    body: { messages: [{ position: 0, sender: "them" }] }
  })
  const batch = await api.POST("/api/v1/sessions/{sessionId}/suggestions", {
    params: { path: { sessionId } },
    body: { instruction: "shorter" }
  })
  const suggestion = batch.data?.data.suggestions[0]
  if (suggestion !== undefined) {
    await api.POST("/api/v1/sessions/{sessionId}/suggestions/{suggestionId}/dislike", {
      params: { path: { sessionId, suggestionId: suggestion.id } }
    })
  }
  await api.POST("/api/v1/sessions/{sessionId}/cancel", { params: { path: { sessionId } } })
  const removed = await api.DELETE("/api/v1/sessions/{sessionId}", { params: { path: { sessionId } } })

  // Errors are the envelope, narrowed by status.
  const missing = await api.GET("/api/v1/matches/{matchId}", { params: { path: { matchId: "nosuchmatch" } } })
  const code: string | undefined = missing.error?.error.code

  return {
    firstName,
    status,
    nextCursor,
    openers: openers.data?.data.items.length,
    transcript: transcript.length,
    sessions: sessions.data?.data.items.map((item) => item.status),
    removed: removed.response.status,
    code
  }
}
