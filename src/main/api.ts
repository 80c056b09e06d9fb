/** The api process: HttpApi, RPC and WebSocket on PORT. Stateless; run as many as needed. */
import { runMain } from "../core/runtime.ts"
import { ApiServer } from "../server.ts"

runMain("api", ApiServer)
