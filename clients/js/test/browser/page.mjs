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

/** Count the records of one object store of database `name`, beside the Store. */
async function countRecords (name, storeName) {
  const db = await new Promise((resolve, reject) => {
    const r = indexedDB.open(name)
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error)
  })
  try {
    return await new Promise((resolve, reject) => {
      const r = db.transaction(storeName).objectStore(storeName).count()
      r.onsuccess = () => resolve(r.result)
      r.onerror = () => reject(r.error)
    })
  } finally {
    db.close()
  }
}

/**
 * What only IndexedDB does: new notes written in bulk keep their states in a few
 * records, not one each; and notes written before the indexes became sparse ('' for
 * no project, 0 for unpinned and live) are still found by every query.
 */
window.checkIndexedDbLayout = async () => {
  const name = `layout-${Date.now()}`
  const store = await openIndexedDbStore(name)
  try {
    const note = (id, extra = {}) => ({ entity: 'note', id, fields: { title: id }, clocks: {}, body: '', bodyState: new Uint8Array([1, 2, 3]), derived: {}, ...extra })
    await store.commit({ rows: Array.from({ length: 500 }, (_, i) => note(`n${i}`)) })
    const packed = await countRecords(name, 'documents')
    await store.commit({ rows: Array.from({ length: 5 }, (_, i) => note(`few${i}`)) })
    const few = await countRecords(name, 'documents') - packed
    const db = await new Promise((resolve) => { const r = indexedDB.open(name); r.onsuccess = () => resolve(r.result) })
    await new Promise((resolve, reject) => {
      const t = db.transaction('notes', 'readwrite')
      t.objectStore('notes').put({ id: 'old', fields: { title: 'old', tags: [], pinned: false, project_id: null, deleted: false }, clocks: {}, body: '', derived: {}, project: '', pinned: 0, deleted: 0, tags: [] })
      t.oncomplete = resolve
      t.onerror = () => reject(t.error)
    })
    db.close()
    const found = async (filter) => (await store.queryNotes(filter)).some((r) => r.id === 'old')
    return { packed, few, old: [await found({}), await found({ projectId: null }), await found({ pinned: false }), await found({ deleted: true }), await found({ pinned: true })] }
  } finally {
    await store.close()
  }
}

/** Push the next batch and drop the answer on the floor: a response lost in transit. */
window.lostPush = async () => {
  const c = window.client
  const ops = await c.store.exclusive(() => c.outbox.nextBatch())
  if (ops.length > 0) await c.api.push(ops)
  return ops.length
}
