/**
 * HTTP upgrades by path. The Node server hands an upgrade whose path is registered here to its
 * handler (the WebSocket gateway owns its `ws` server: frame-size cap, backpressure) and every
 * other upgrade to the Effect platform (the RPC server's WebSocket protocol).
 */
import { Effect } from "effect"
import type { IncomingMessage } from "node:http"
import type { Duplex } from "node:stream"

export type UpgradeHandler = (request: IncomingMessage, socket: Duplex, head: Buffer) => void

const pathOf = (url: string | undefined) => {
  const raw = url ?? "/"
  const query = raw.indexOf("?")
  return query === -1 ? raw : raw.slice(0, query)
}

export class Upgrades extends Effect.Service<Upgrades>()("Upgrades", {
  sync: () => {
    const routes = new Map<string, UpgradeHandler>()
    return {
      /** Routes upgrades of `path` to `handler` for the lifetime of the scope. */
      route: (path: string, handler: UpgradeHandler) =>
        Effect.acquireRelease(
          Effect.sync(() => routes.set(path, handler)),
          () => Effect.sync(() => routes.delete(path))
        ),
      find: (url: string | undefined): UpgradeHandler | undefined => routes.get(pathOf(url))
    }
  }
}) {}
