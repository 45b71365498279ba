// The SDK under Node against a real syncd server: sign-in, offline edits, push exactly
// once, bootstrap, live sync, tokens, revocation, typed refusals, sharing, and a note
// body through the stock y-websocket provider.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { ApiError, AuthError, ReadOnly, formatHlc } from '../../dist/index.js'
import { URL_, PASSWORD, eventually, newDevice, newEmail, newUser, openDevice, serverNotes } from './util.mjs'

test('register and login as a device; a wrong password is a typed 401', async () => {
  const email = newEmail()
  const c = await openDevice()
  const user = await c.register(email, PASSWORD, 'Ada')
  assert.equal(user.email, email)
  await assert.rejects(c.login(email, 'wrong password!', 'laptop'), (e) => e instanceof AuthError && e.status === 401)
  const me = await c.login(email, PASSWORD, 'laptop')
  assert.equal(me.id, user.id)
  assert.equal(c.deviceId, me.device_id)
  await assert.rejects(c.register(email, PASSWORD), (e) => e instanceof ApiError && e.status === 409 && typeof e.code === 'string')
})

test('offline edits are pushed exactly once and a new device bootstraps them', async () => {
  const { email, client: a } = await newUser()
  const p = await a.createProject({ title: 'Book', word_goal: 1000 })
  const n1 = await a.createNote({ title: 'Chapter 1', project_id: p, tags: ['draft'], body: 'It was a dark night' })
  const n2 = await a.createNote({ title: 'Scratch' })
  await a.updateNote(n2, { pinned: true })
  await a.deleteNote(n2)
  await a.restoreNote(n2)
  await a.insertText(n1, 0, 'Prologue. ')
  const queued = await a.pending()
  assert.equal(queued, 8)
  const first = await a.sync()
  assert.equal(first.pushed, queued)
  assert.equal(await a.pending(), 0)
  assert.equal(await a.acked(), queued)
  assert.equal((await a.sync()).pushed, 0, 'nothing is pushed twice')
  const status = await a.api.call('GET', '/v1/sync/status')
  assert.equal(status.acked, queued)

  const b = await newDevice(email, 'tablet')
  await b.bootstrap()
  const note = await b.note(n1)
  assert.deepEqual([note.title, note.project_id, note.tags, note.body], ['Chapter 1', p, ['draft'], 'Prologue. It was a dark night'])
  assert.equal((await b.note(n2)).pinned, true)
  assert.deepEqual((await b.notes({ projectId: p })).map((x) => x.id), [n1])
  assert.equal((await b.project(p)).word_goal, 1000)
  const server = await serverNotes(b)
  assert.equal(server[n1].body, note.body)
  assert.equal(server[n1].title, note.title)
  for (const c of [a, b]) await c.close()
})

test('the canonical clock of a far-future op is adopted from the push result', async () => {
  const { client: a } = await newUser()
  // a device whose wall clock runs a day fast
  const id = await a.createNote({ title: 'skewed' })
  const row = await a.store.row('note', id)
  const [op] = await a.store.pending(1)
  const future = `${String(Date.now() + 86_400_000).padStart(13, '0')}.000000.${a.deviceId}`
  await a.store.commit({ dropOps: [op.client_seq], meta: { next_seq: op.client_seq }, enqueue: [{ ...op, client_seq: undefined, hlc: future }], rows: [{ ...row, clocks: { title: future } }] })
  await a.push()
  const clock = (await a.store.row('note', id)).clocks.title
  assert.notEqual(clock, future)
  assert.ok(clock < future)
  const server = await serverNotes(a)
  assert.equal(server[id].clocks.title, clock)
  await a.close()
})

test('live: an edit on one device reaches the other over the sync socket', async () => {
  const { email, client: a } = await newUser()
  const b = await newDevice(email, 'phone')
  const statuses = []
  b.onStatus((s) => statuses.push(s))
  a.start()
  b.start()
  await eventually(() => a.status === 'online' && b.status === 'online', 'both online')
  const id = await a.createNote({ title: 'live', body: 'typed on a' })
  await eventually(async () => (await b.note(id))?.body === 'typed on a', 'the note reaches b')
  const seen = []
  b.subscribe((change) => seen.push(...change.ids))
  await a.updateNote(id, { title: 'live 2' })
  await eventually(async () => (await b.note(id))?.title === 'live 2', 'the title reaches b')
  assert.ok(seen.includes(id))
  assert.ok(statuses.includes('connecting') && statuses.includes('online'))
  assert.equal(await a.pending(), 0)
  for (const c of [a, b]) await c.close()
})

test('a refresh rotates the tokens; a revoked device is signed out and keeps its data', async () => {
  const { email, client: a } = await newUser()
  const b = await newDevice(email, 'old phone')
  const id = await b.createNote({ title: 'kept' })
  await b.sync()
  const oldRefresh = await b.store.getMeta('refresh_token')
  await b.store.commit({ meta: { access_token: 'not-a-token' } })
  await b.pull() // 401 → refresh → retried
  assert.notEqual(await b.store.getMeta('refresh_token'), oldRefresh)

  await a.api.call('DELETE', `/v1/devices/${b.deviceId}`)
  await b.createNote({ title: 'made after revocation' })
  await assert.rejects(b.sync(), (e) => e instanceof AuthError)
  assert.equal(b.status, 'signed-out')
  assert.equal(await b.signedIn(), false)
  assert.equal((await b.note(id)).title, 'kept', 'local data is kept')
  assert.equal(await b.pending(), 1, 'queued ops are kept')
  // signing in again makes a new device that numbers its ops from 1 and pushes them
  await b.login(email, PASSWORD, 'old phone again')
  assert.deepEqual((await b.store.pending(10)).map((o) => [o.client_seq, o.hlc.endsWith(b.deviceId)]), [[1, true]])
  await b.sync()
  assert.ok(Object.values(await serverNotes(a)).some((n) => n.title === 'made after revocation'))
  for (const c of [a, b]) await c.close()
})

test('a viewer: its edits are rejected with a code and it sees the owner\'s', async () => {
  const { client: owner } = await newUser()
  const { email: viewerEmail, client: viewer } = await newUser()
  const p = await owner.createProject({ title: 'Shared' })
  const id = await owner.createNote({ title: 'by owner', project_id: p })
  await owner.sync()
  const member = await owner.share(p, viewerEmail, 'viewer')
  assert.equal(member.role, 'viewer')
  assert.equal((await owner.members(p)).length, 2)
  await viewer.sync()
  assert.equal((await viewer.note(id)).title, 'by owner')
  assert.equal(await viewer.role('note', id), 'viewer')
  await assert.rejects(viewer.updateNote(id, { title: 'by viewer' }), (e) => e instanceof ReadOnly && e.code === 'forbidden')
  // a device that queues the edit anyway is refused by the server, op by op
  await viewer.store.commit({ enqueue: [{ hlc: formatHlc(Date.now(), 0, viewer.deviceId), entity: 'note', id, kind: 'set', fields: { title: 'by viewer' } }] })
  await viewer.sync()
  const [rej] = await viewer.rejections()
  assert.equal(rej.code, 'forbidden')
  assert.equal((await serverNotes(owner))[id].title, 'by owner')
  await owner.updateNote(id, { title: 'owner again' })
  await owner.sync()
  await viewer.sync()
  assert.equal((await viewer.note(id)).title, 'owner again', 'the server\'s write wins over the refused one')
  for (const c of [owner, viewer]) await c.close()
})

test('conflicts are listed and resolved', async () => {
  const { email, client: a } = await newUser()
  const id = await a.createNote({ title: 'base' })
  await a.sync()
  const b = await newDevice(email, 'b')
  await b.bootstrap()
  await a.updateNote(id, { title: 'from a' })
  await a.sync()
  await b.updateNote(id, { title: 'from b' }) // b had not seen a's write
  await b.sync()
  const [conflict] = await b.conflicts()
  assert.equal(conflict.field, 'title')
  await b.resolveConflict(conflict.id, 'theirs')
  await b.sync()
  await a.sync()
  assert.equal((await a.note(id)).title, (await b.note(id)).title)
  assert.deepEqual(await b.conflicts(), [])
  for (const c of [a, b]) await c.close()
})

test('a body edited offline and through the stock provider converges', async () => {
  const { email, client: a } = await newUser()
  const b = await newDevice(email, 'b')
  const id = await a.createNote({ title: 'collab', body: 'shared' })
  await a.sync()
  await b.bootstrap()
  // a edits through the provider, live
  const doc = await a.doc(id)
  const provider = new WebsocketProvider(`${URL_.replace('http', 'ws')}/v1/collab`, id, doc, {
    WebSocketPolyfill: WebSocket, params: { token: await a.store.getMeta('access_token') }, disableBc: true
  })
  a.attach(id, provider)
  await eventually(() => provider.synced, 'provider synced')
  doc.getText('body').insert(0, 'live ')
  // b edits offline as text ops
  await b.insertText(id, (await b.note(id)).body.length, ' offline')
  await a.flush()
  await eventually(async () => (await serverNotes(b))[id].body.includes('live'), 'the provider edit is stored')
  await b.sync()
  await a.sync()
  await eventually(() => doc.getText('body').toString().includes('offline'), 'b\'s text reaches the open document')
  const server = (await serverNotes(a))[id].body
  assert.equal(server, 'live shared offline')
  assert.equal((await a.note(id)).body, server)
  assert.equal((await b.note(id)).body, server)
  provider.destroy()
  for (const c of [a, b]) await c.close()
})
