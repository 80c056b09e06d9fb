/** The WebSocket floor for bench/websocket.ts: a bare `ws` server answering JSON pings, nothing else. */
import { WebSocketServer } from "ws"

const wss = new WebSocketServer({ port: Number(process.env["PORT"]), host: "127.0.0.1", perMessageDeflate: false })
wss.on("connection", (ws) =>
  ws.on("message", (data) => {
    const frame: unknown = JSON.parse(data.toString())
    if (typeof frame === "object" && frame !== null && "type" in frame && frame.type === "ping") {
      ws.send(JSON.stringify({ type: "pong", t: "t" in frame ? frame.t : undefined }))
    }
  })
)
