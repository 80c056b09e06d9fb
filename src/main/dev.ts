/**
 * Everything in one process on embedded defaults (PGlite under .data/, no Redis needed): the
 * server a newcomer or the mobile developer starts with `npm run dev`, with the sessions worker
 * running in the same process (in-process queue and progress bus).
 */
import { Layer } from "effect"
import { TokenVerifier } from "../core/auth/token-verifier.ts"
import { runMain } from "../core/runtime.ts"
import { onInfrastructure } from "../infrastructure.ts"
import { HttpRoutes, serveRoutes } from "../server.ts"
import { SessionsWorker } from "../worker.ts"

/** The api and the sessions worker sharing one infrastructure: the same queue and progress bus. */
const DevServer = Layer.mergeAll(serveRoutes(HttpRoutes), SessionsWorker).pipe(
  Layer.provide(TokenVerifier.layer),
  onInfrastructure("dev")
)

runMain("dev", DevServer)
