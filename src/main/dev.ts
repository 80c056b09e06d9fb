/**
 * Everything in one process on embedded defaults (PGlite under .data/, no Redis needed): the
 * server a newcomer or the mobile developer starts with `npm run dev`, with the sessions worker
 * running in the same process (in-process queue and progress bus).
 */
import { runMain } from "../core/runtime.ts"
import { DevServer } from "../server.ts"

runMain("dev", DevServer)
