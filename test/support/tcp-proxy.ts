/**
 * A TCP proxy in front of a real server (PostgreSQL here) that a test can cut: every connection
 * through it is destroyed and new ones are refused, as when the database host goes away; then
 * restored on the same port. What the app sees is a real outage of its real client, not a fake.
 */
import { createServer, type Server, type Socket, connect } from "node:net"

export interface CuttableProxy {
  /** The proxy's port on 127.0.0.1. */
  readonly port: number
  /** Destroys every open connection and refuses new ones until `restore`. */
  readonly cut: () => Promise<void>
  /** Accepts connections again on the same port. */
  readonly restore: () => Promise<void>
  readonly close: () => Promise<void>
}

export const startCuttableProxy = async (target: { host: string; port: number }): Promise<CuttableProxy> => {
  const sockets = new Set<Socket>()
  const track = (socket: Socket) => {
    sockets.add(socket)
    socket.once("close", () => sockets.delete(socket))
  }
  const makeServer = () =>
    createServer((client) => {
      const upstream = connect(target.port, target.host)
      track(client)
      track(upstream)
      client.on("error", () => upstream.destroy())
      upstream.on("error", () => client.destroy())
      client.pipe(upstream).pipe(client)
    })
  const listen = (server: Server, port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once("error", reject)
      server.listen(port, "127.0.0.1", () => {
        const address = server.address()
        resolve(typeof address === "object" && address !== null ? address.port : port)
      })
    })
  const shut = (server: Server) =>
    new Promise<void>((resolve) => {
      server.close(() => resolve())
      for (const socket of sockets) socket.destroy()
    })
  let server: Server | undefined = makeServer()
  const port = await listen(server, 0)
  return {
    port,
    cut: async () => {
      const current = server
      server = undefined
      if (current !== undefined) await shut(current)
    },
    restore: async () => {
      if (server !== undefined) return
      server = makeServer()
      await listen(server, port)
    },
    close: async () => {
      const current = server
      server = undefined
      if (current !== undefined) await shut(current)
      for (const socket of sockets) socket.destroy()
    }
  }
}
