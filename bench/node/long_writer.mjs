// The long-note writer's edits, made by Yjs before the bench's clock starts:
//   node long_writer.mjs CLIENT_ID < positions
// stdin: one insert index per line (the bench draws them); each inserts "ab" into the
// root Text "body" of one Y.Doc with that client id, in its own transaction. stdout, each
// as a 4-byte little-endian length then the bytes: every transaction's update (what a
// y-websocket client sends after that edit), then the document's full state, then its text.
// Yjs finds an index from its search markers; yrs walks the list from the start, which
// made 50,000 random inserts take minutes in the bench's own process.
import * as Y from 'yjs'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const positions = Buffer.concat(chunks).toString().split('\n').filter((l) => l !== '').map(Number)

const doc = new Y.Doc()
doc.clientID = Number(process.argv[2])
const text = doc.getText('body')
const out = []
const put = (bytes) => {
  const len = Buffer.alloc(4)
  len.writeUInt32LE(bytes.length)
  out.push(len, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length))
}
doc.on('update', put)
for (const index of positions) text.insert(index, 'ab')
doc.off('update', put)
put(Y.encodeStateAsUpdate(doc))
put(new TextEncoder().encode(text.toString()))
process.stdout.write(Buffer.concat(out))
