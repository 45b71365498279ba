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
 * This page's store holds database `name` open (a meta value committed), as an older
 * version of the app would in a tab of its own.
 */
window.holdStore = async (name) => {
  const store = await openIndexedDbStore(name)
  await store.commit({ meta: { kept: 'yes' } })
  window.held = { store, changes: 0 }
  store.onVersionChange(() => { window.held.changes++ })
}

/** What the held store says now: the version changes it saw, and how a call fares. */
window.heldStore = async () => {
  const { store, changes } = window.held
  const call = await store.getMeta('kept').then((v) => `ok ${v}`, (e) => e.name)
  return { changes, stale: store.stale, call }
}

/**
 * Open database `name` one version up, as a newer version of the app in another tab
 * would (nothing to create): rejects if another tab's connection blocks it. Resolves
 * with the meta value the other tab committed.
 */
window.openNewer = async (name) => {
  const current = await openRaw(name)
  const version = current.version
  current.close()
  const db = await new Promise((resolve, reject) => {
    const r = indexedDB.open(name, version + 1)
    r.onblocked = () => reject(new Error('blocked by another tab'))
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error)
  })
  try {
    return await new Promise((resolve, reject) => {
      const r = db.transaction('meta').objectStore('meta').get('kept')
      r.onsuccess = () => resolve(r.result)
      r.onerror = () => reject(r.error)
    })
  } finally {
    db.close()
  }
}

const openRaw = (name, version, upgrade) => new Promise((resolve, reject) => {
  const r = version === undefined ? indexedDB.open(name) : indexedDB.open(name, version)
  if (upgrade !== undefined) r.onupgradeneeded = () => upgrade(r.result)
  r.onsuccess = () => resolve(r.result)
  r.onerror = () => reject(r.error)
})

/**
 * What only IndexedDB does: new notes written in bulk keep their states in a few
 * records, not one each; and every note is in one of a fixed number of packs, not a
 * record each.
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
    const notePacks = await countRecords(name, 'notePacks')
    return { packed, few, notePacks, notes: (await store.rows('note')).length }
  } finally {
    await store.close()
  }
}

/**
 * A database written by the layout before note packs (version 2: a record per note in
 * `notes`, with indexes; some written before the indexes became sparse, with '' for no
 * project and 0 for unpinned and live), opened by this SDK: every note, its fields and
 * its state are found, by id and by every query, and the old store is gone.
 */
window.checkUpgradeFromNoteRecords = async () => {
  const name = `upgrade-${Date.now()}`
  const n = 300
  const fields = (i) => ({ title: `old ${i}`, tags: i % 4 === 0 ? [] : [`t${i % 4}`], pinned: i % 10 === 0, favorite: false, project_id: i % 3 === 0 ? 'p1' : null, deleted: i % 7 === 0 })
  const old = await openRaw(name, 2, (db) => {
    db.createObjectStore('meta')
    db.createObjectStore('outbox', { keyPath: 'client_seq' })
    db.createObjectStore('sent', { keyPath: 'client_seq' })
    const notes = db.createObjectStore('notes', { keyPath: 'id' })
    notes.createIndex('project', 'project')
    notes.createIndex('pinned', 'pinned')
    notes.createIndex('deleted', 'deleted')
    notes.createIndex('tags', 'tags', { multiEntry: true })
    db.createObjectStore('projects', { keyPath: 'id' })
    db.createObjectStore('documents')
    db.createObjectStore('rejections', { keyPath: 'client_seq' })
    db.createObjectStore('notifications', { keyPath: 'seq' }).createIndex('kind', 'kind')
    db.createObjectStore('settings', { keyPath: 'id' })
  })
  await new Promise((resolve, reject) => {
    const t = old.transaction(['notes', 'documents', 'projects'], 'readwrite')
    const notes = t.objectStore('notes')
    for (let i = 0; i < n; i++) {
      const f = fields(i)
      const r = { id: `old${i}`, fields: f, clocks: { title: `c${i}` }, body: `body ${i}`, derived: { word_count: i } }
      if (i % 2 === 0) {
        // sparse index columns
        if (f.project_id !== null) r.project = f.project_id
        if (f.pinned) r.pinned = 1
        if (f.deleted) r.deleted = 1
        if (f.tags.length > 0) r.tags = f.tags
      } else {
        Object.assign(r, { project: f.project_id ?? '', pinned: f.pinned ? 1 : 0, deleted: f.deleted ? 1 : 0, tags: f.tags })
      }
      // a third of the states in one pack of states, the rest on their own
      if (i % 3 === 1) r.pack = 'oldpack'
      else t.objectStore('documents').put(new Uint8Array([i % 256, 7]), r.id)
      notes.put(r)
    }
    const inPack = Array.from({ length: n }, (_, i) => i).filter((i) => i % 3 === 1)
    t.objectStore('documents').put({ ids: inPack.map((i) => `old${i}`), states: inPack.map((i) => new Uint8Array([i % 256, 7])) }, ['oldpack'])
    t.objectStore('projects').put({ id: 'p1', fields: { title: 'P' }, clocks: {}, body: '', derived: {} })
    t.oncomplete = resolve
    t.onerror = () => reject(t.error)
  })
  old.close()
  const store = await openIndexedDbStore(name)
  try {
    const problems = []
    const all = new Map((await store.rows('note')).map((r) => [r.id, r]))
    for (let i = 0; i < n; i++) {
      const r = all.get(`old${i}`)
      if (r === undefined) { problems.push(`old${i} missing`); continue }
      const same = JSON.stringify(r.fields) === JSON.stringify(fields(i)) && r.body === `body ${i}` &&
        r.clocks.title === `c${i}` && r.derived.word_count === i &&
        r.bodyState !== null && r.bodyState[0] === i % 256 && r.bodyState[1] === 7
      if (!same) problems.push(`old${i} differs: ${JSON.stringify(r)}`)
    }
    const [one] = await store.rows('note', ['old4'])
    if (one?.fields.title !== 'old 4' || one.bodyState?.[0] !== 4) problems.push('old4 by id')
    const ids = async (filter) => (await store.queryNotes(filter)).map((r) => r.id).sort()
    const expect = (pick) => Array.from({ length: n }, (_, i) => i).filter(pick).map((i) => `old${i}`).sort()
    const live = (i) => i % 7 !== 0
    const queries = [
      [{}, expect(live)],
      [{ deleted: true }, expect((i) => !live(i))],
      [{ deleted: null }, expect(() => true)],
      [{ projectId: 'p1' }, expect((i) => live(i) && i % 3 === 0)],
      [{ projectId: null }, expect((i) => live(i) && i % 3 !== 0)],
      [{ pinned: true }, expect((i) => live(i) && i % 10 === 0)],
      [{ pinned: false }, expect((i) => live(i) && i % 10 !== 0)],
      [{ tag: 't1' }, expect((i) => live(i) && i % 4 === 1)]
    ]
    for (const [filter, want] of queries) {
      const got = await ids(filter)
      if (JSON.stringify(got) !== JSON.stringify(want)) problems.push(`query ${JSON.stringify(filter)}: ${got.length} notes, not ${want.length}`)
    }
    if ((await store.rows('project')).length !== 1) problems.push('the project is gone')
    // written again after the upgrade, a note keeps its state
    const [o1] = await store.rows('note', ['old1'], false)
    await store.commit({ rows: [{ ...o1, fields: { ...o1.fields, title: 'renamed' } }] })
    const [r1] = await store.rows('note', ['old1'])
    if (r1.fields.title !== 'renamed' || r1.bodyState?.[0] !== 1) problems.push('old1 written again')
    const db = await openRaw(name)
    const stores = [...db.objectStoreNames]
    db.close()
    return { problems, stores }
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
