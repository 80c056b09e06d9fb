/**
 * Every operation of the HttpApi is reachable through RPC: each one is mapped here to its
 * procedure, behind the matching authentication. A new HttpApi operation fails this test until it
 * is mapped (to a procedure, or deliberately to none with the reason).
 */
import { HttpApi } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Authentication, TokenAuthentication } from "../../../src/domain/auth.ts"
import { WingmateApi } from "../../../src/domain/api.ts"
import { RpcAuthentication, RpcServerFailures, RpcTokenAuthentication, WingmateRpcs } from "../../../src/domain/rpc.ts"

/** HttpApi operation (`group.endpoint`) → RPC tag, or why it has none. */
const RPC_OF: Record<string, string | { readonly none: string }> = {
  "users.me": "users.me",
  "users.updateMe": "users.updateMe",
  "users.exportMe": "users.exportMe",
  "users.eraseMe": "users.eraseMe",
  "matches.create": "matches.create",
  "matches.list": "matches.list",
  "matches.get": "matches.get",
  "matches.update": "matches.update",
  "matches.delete": "matches.delete",
  "uploads.create": "uploads.create",
  "uploads.get": "uploads.get",
  "openers.generate": "openers.generate",
  "openers.list": "openers.list",
  "openers.like": "openers.like",
  "openers.unlike": "openers.unlike",
  "openers.dislike": "openers.dislike",
  "openers.undislike": "openers.undislike",
  "sessions.create": "sessions.create",
  "sessions.list": "sessions.list",
  "sessions.get": "sessions.get",
  // The SSE progress feed; over RPC a stream of the same items, resumable with `afterSeq`.
  "sessions.events": "sessions.follow",
  "sessions.patchTranscript": "sessions.patchTranscript",
  "sessions.regenerate": "sessions.regenerate",
  "sessions.like": "sessions.like",
  "sessions.unlike": "sessions.unlike",
  "sessions.dislike": "sessions.dislike",
  "sessions.undislike": "sessions.undislike",
  "sessions.cancel": "sessions.cancel",
  "sessions.delete": "sessions.delete",
  "webhooks.clerk": { none: "Clerk's server calling ours (svix-signed), not an app operation" },
  "health.live": { none: "a probe for the orchestrator, not an app operation" },
  "health.ready": { none: "a probe for the orchestrator, not an app operation" },
  "operations.metrics": { none: "Prometheus scrapes HTTP; an operator route, not an app operation" }
}

interface Operation {
  readonly id: string
  readonly authentication: "user" | "token" | "none"
}

const operations: Array<Operation> = []
HttpApi.reflect(WingmateApi, {
  onGroup: () => {},
  onEndpoint: ({ group, endpoint, middleware }) => {
    const keys = new Set(Array.from(middleware, (tag) => tag.key))
    operations.push({
      id: `${group.identifier}.${endpoint.name}`,
      authentication: keys.has(Authentication.key) ? "user" : keys.has(TokenAuthentication.key) ? "token" : "none"
    })
  }
})

describe("RPC coverage of the HttpApi", () => {
  it("every HttpApi operation is mapped (a new one fails here until it has a procedure, or a reason for none)", () => {
    const unmapped = operations.map((op) => op.id).filter((id) => !(id in RPC_OF))
    expect(unmapped).toEqual([])
    // And the table names no operation that no longer exists.
    expect(Object.keys(RPC_OF).sort()).toEqual(operations.map((op) => op.id).sort())
  })

  it("each mapped procedure exists, behind the authentication of its operation and RpcServerFailures", () => {
    for (const op of operations) {
      const target = RPC_OF[op.id]
      if (target === undefined || typeof target !== "string") continue
      const rpc = WingmateRpcs.requests.get(target)
      expect(rpc, `${op.id} → ${target}`).toBeDefined()
      const expected = op.authentication === "token" ? RpcTokenAuthentication.key : RpcAuthentication.key
      const keys: Array<string> = []
      rpc?.middlewares.forEach((tag: { readonly key: string }) => keys.push(tag.key))
      // The server's own failures are answered outermost, authentication's included.
      expect(keys, `${target} runs behind ${expected}`).toEqual([expected, RpcServerFailures.key])
      expect(op.authentication, op.id).not.toBe("none")
    }
  })

  it("every procedure answers some HttpApi operation (no RPC-only surface)", () => {
    const targets = new Set(Object.values(RPC_OF).filter((target) => typeof target === "string"))
    expect([...WingmateRpcs.requests.keys()].filter((tag) => !targets.has(tag))).toEqual([])
  })
})
