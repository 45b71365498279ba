// The test page's script (bundled with esbuild by browser.test.mjs): the SDK, Yjs and
// the stock y-websocket provider, with one copy of yjs between them, and the store suite.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import * as syncd from '../../dist/index.js'
import { cases } from '../store-suite.mjs'

const { SyncClient, openIndexedDbStore } = syncd
const logged = []

window.syncd = syncd
window.Y = Y
window.logged = logged

/** Open the account's IndexedDB store and a client on it, through this page's origin. */
window.openClient = async (account) => {
  const store = await openIndexedDbStore(`syncd-${account}`)
  const client = await SyncClient.open(store, { url: location.origin, backoffBase: 50, backoffCap: 500 })
  client.onStatus((s) => logged.push(`status ${s}`))
  window.client = client
  return client.deviceId ?? null
}

/** Bind the note's document to the stock provider on /v1/collab/{id}. */
window.collab = async (id) => {
  const client = window.client
  const doc = await client.doc(id)
  const token = await client.store.getMeta('access_token')
  const provider = new WebsocketProvider(`${location.origin.replace('http', 'ws')}/v1/collab`, id, doc,
    { params: { token }, disableBc: true })
  client.attach(id, provider)
  window.provider = provider
  await new Promise((resolve) => provider.once('sync', resolve))
  return doc.getText('body').toString()
}

/** The store suite against IndexedDB, each case on a fresh database. */
window.runStoreSuite = async () => {
  const results = []
  let n = 0
  for (const [name, run] of Object.entries(cases)) {
    const store = await openIndexedDbStore(`suite-${Date.now()}-${n++}`)
    try {
      await run(store)
      results.push({ name, ok: true })
    } catch (e) {
      results.push({ name, ok: false, error: String(e?.stack ?? e) })
    } finally {
      await store.close()
    }
  }
  return results
}

/** Push the next batch and drop the answer on the floor: a response lost in transit. */
window.lostPush = async () => {
  const c = window.client
  const ops = await c.store.exclusive(() => c.outbox.nextBatch())
  if (ops.length > 0) await c.api.push(ops)
  return ops.length
}
