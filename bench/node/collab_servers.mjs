// The reference collab servers bench/collab.py measures beside syncd, documents in memory:
//   node collab_servers.mjs hocuspocus     @hocuspocus/server, its own protocol framing
//   node collab_servers.mjs y-websocket    @y/websocket-server, the y-websocket protocol
// Each listens on a free loopback port and prints it on the first line of stdout.
import http from 'node:http'

const kind = process.argv[2]

if (kind === 'hocuspocus') {
  const { Server } = await import('@hocuspocus/server')
  // The bench's clients send no keep-alive of their own (its HocuspocusProvider would):
  // the idle timeout (60 s, closing with 4408) is made longer than any run.
  const server = new Server({ port: 0, address: '127.0.0.1', quiet: true, timeout: 3600000 })
  await server.listen()
  console.log(server.address.port)
} else if (kind === 'y-websocket') {
  const { WebSocketServer } = await import('ws')
  const { setupWSConnection } = await import('@y/websocket-server/utils')
  const wss = new WebSocketServer({ noServer: true })
  wss.on('connection', setupWSConnection)
  const server = http.createServer((_req, res) => { res.writeHead(200); res.end('ok') })
  server.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
  })
  server.listen(0, '127.0.0.1', () => console.log(server.address().port))
  const stop = () => server.close(() => process.exit(0))
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
} else {
  console.error('usage: collab_servers.mjs hocuspocus|y-websocket')
  process.exit(2)
}
