// A TCP proxy in front of the server that a test can cut: every open connection
// (WebSockets included) is destroyed and new ones are dropped until `restore()`. This
// is how a test takes a browser offline: Playwright's setOffline leaves sockets open.
import net from 'node:net'

export async function startProxy (targetPort, host = '127.0.0.1') {
  const sockets = new Set()
  let cut = false
  const server = net.createServer((client) => {
    if (cut) {
      client.destroy()
      return
    }
    const upstream = net.connect(targetPort, host)
    for (const [a, b] of [[client, upstream], [upstream, client]]) {
      sockets.add(a)
      a.on('error', () => {})
      a.on('close', () => { sockets.delete(a); b.destroy() })
      a.pipe(b)
    }
  })
  await new Promise((resolve) => server.listen(0, host, resolve))
  return {
    port: server.address().port,
    cut () {
      cut = true
      for (const s of sockets) s.destroy()
    },
    restore () { cut = false },
    async close () {
      this.cut()
      await new Promise((resolve) => server.close(resolve))
    }
  }
}
