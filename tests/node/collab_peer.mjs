// A stock y-websocket peer for interop tests: connect, sync, insert, wait, print the text.
//
//   node collab_peer.mjs --url ws://127.0.0.1:PORT/v1/collab --room NOTE_ID --token TOKEN \
//     --insert "text" --at N|end --wait-for "substring" ... --timeout-ms 10000
//
// Prints one JSON line {"text": ..., "synced": ...}; exits 0, or 1 on timeout.
// Connection closes are logged to stderr. Run it from the directory holding node_modules.
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    room: { type: 'string' },
    token: { type: 'string' },
    insert: { type: 'string' },
    at: { type: 'string', default: 'end' },
    'wait-for': { type: 'string', multiple: true, default: [] },
    'timeout-ms': { type: 'string', default: '10000' }
  }
})
if (!args.url || !args.room) {
  console.error('usage: collab_peer.mjs --url URL --room NOTE_ID [--token T] [--insert S]' +
    ' [--at N|end] [--wait-for S]... [--timeout-ms MS]')
  process.exit(2)
}
if (args.at !== 'end' && !/^\d+$/.test(args.at)) {
  console.error('--at takes a non-negative integer or "end"')
  process.exit(2)
}

const doc = new Y.Doc()
const body = doc.getText('body')
const provider = new WebsocketProvider(args.url, args.room, doc, {
  WebSocketPolyfill: WebSocket,
  params: args.token === undefined ? {} : { token: args.token },
  disableBc: true // Node has a BroadcastChannel; peers must talk only through the server
})
provider.on('connection-close', (event) => {
  if (event) console.error(`connection closed: ${event.code} ${event.reason}`)
})

let finished = false
const finish = (ok) => {
  if (finished) return
  finished = true
  clearTimeout(timer)
  process.stdout.write(JSON.stringify({ text: body.toString(), synced: provider.synced }) + '\n')
  // destroy flushes the socket (ws sends queued frames before the close frame) and,
  // with the doc, stops every interval, so the process ends once the socket is closed
  provider.destroy()
  doc.destroy()
  process.exitCode = ok ? 0 : 1
  setTimeout(() => process.exit(process.exitCode), 2000).unref()
}
const timer = setTimeout(() => finish(false), Number(args['timeout-ms']))

const check = () => {
  const text = body.toString()
  if (args['wait-for'].every((s) => text.includes(s))) finish(true)
}

let started = false
provider.on('sync', (isSynced) => {
  if (!isSynced || started) return
  started = true
  if (args.insert !== undefined) {
    const index = args.at === 'end' ? body.length : Math.min(Number(args.at), body.length)
    body.insert(index, args.insert)
  }
  body.observe(check)
  check()
})
