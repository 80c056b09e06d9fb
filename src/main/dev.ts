/**
 * Everything in one process on embedded defaults (PGlite under .data/, no Redis needed): the
 * server a newcomer or the mobile developer starts with `npm run dev`.
 */
import { runMain } from "../core/runtime.ts"
import { ApiServer } from "../server.ts"

runMain(ApiServer)
