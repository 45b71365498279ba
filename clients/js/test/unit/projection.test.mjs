// Remote events applied to the local projection, given as the objects the server sends
// (the same cases as the Python SDK's tests/test_projection.py).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { Clock, formatHlc, newDoc, replaceText } from '../../dist/index.js'
import { loadSnapshot } from '../../dist/sync.js'
import { toBase64 } from '../../dist/base64.js'
import { DEVICE, NOTE, USER, ev, h, offlineClient } from './helpers.mjs'

function updates (...texts) {
  const doc = newDoc()
  return texts.map((t) => {
    const before = Y.encodeStateVector(doc)
    replaceText(doc, t)
    return toBase64(Y.encodeStateAsUpdate(doc, before))
  })
}

test('set is LWW per field in any order', async () => {
  const c = await offlineClient()
  await c.applyEvents([ev(2, 'set', h(2000), { fields: { title: 'new', pinned: true } })])
  await c.store.commit({ meta: { cursor: 0 } }) // deliver the older one afterwards
  await c.applyEvents([ev(1, 'set', h(1000), { fields: { title: 'old', tags: ['a'] } })])
  const note = await c.note(NOTE)
  assert.deepEqual([note.title, note.pinned, note.tags], ['new', true, ['a']])
  assert.equal(await c.cursor(), 1)
})

test('at equal wall and counter the greater device wins', async () => {
  const c = await offlineClient()
  await c.applyEvents([
    ev(1, 'set', h(1000, 'b'), { fields: { title: 'from b' } }),
    ev(2, 'set', h(1000, 'a'), { fields: { title: 'from a' } })
  ])
  assert.equal((await c.note(NOTE)).title, 'from b')
})

test('an older remote event does not overwrite a local edit', async () => {
  const c = await offlineClient()
  await c.applyEvents([ev(1, 'set', h(1000), { fields: { title: 'remote' } })])
  await c.updateNote(NOTE, { title: 'mine' }) // the local clock has observed h(1000)
  await c.applyEvents([ev(2, 'set', h(1500), { fields: { title: 'stale', favorite: true } })])
  const note = await c.note(NOTE)
  assert.equal(note.title, 'mine')
  assert.equal(note.favorite, true)
})

test('events at or below the cursor are skipped', async () => {
  const c = await offlineClient()
  await c.applyEvents([ev(1, 'set', h(1000), { fields: { title: 'a' } })])
  assert.deepEqual(await c.applyEvents([ev(1, 'set', h(9000), { fields: { title: 'replayed' } })]), [])
  assert.equal((await c.note(NOTE)).title, 'a')
})

test('delete and restore are LWW', async () => {
  const c = await offlineClient()
  await c.applyEvents([ev(1, 'set', h(1000), { fields: { title: 'x' } }), ev(2, 'restore', h(3000)), ev(3, 'delete', h(2000))])
  assert.equal((await c.note(NOTE)).deleted, false)
  assert.equal((await c.notes()).length, 1)
  await c.applyEvents([ev(4, 'delete', h(4000))])
  assert.deepEqual(await c.notes(), [])
  assert.equal((await c.notes({ deleted: true })).length, 1)
  assert.equal((await c.notes({ deleted: null })).length, 1)
})

test('text events merge and are idempotent', async () => {
  const c = await offlineClient()
  const [u1, u2] = updates('hello world', 'hello brave world')
  await c.applyEvents([
    ev(1, 'set', h(1000), { fields: { title: 't' } }),
    ev(2, 'text', h(1001), { field: 'body', update: u2 }),
    ev(3, 'text', h(1002), { field: 'body', update: u1 }),
    ev(4, 'text', h(1003), { field: 'body', update: u2 })
  ])
  assert.equal((await c.note(NOTE)).body, 'hello brave world')
  await c.setBody(NOTE, 'hello brave new world')
  assert.equal((await c.note(NOTE)).body, 'hello brave new world')
  const [op] = (await c.store.pending(10)).filter((o) => o.kind === 'text')
  assert.equal(op.field, 'body')
})

test('a bad text update is skipped', async () => {
  const c = await offlineClient()
  await c.applyEvents([ev(1, 'set', h(1000), { fields: { title: 't' } }), ev(2, 'text', h(1001), { field: 'body', update: 'AAECAwQ=' })])
  assert.equal((await c.note(NOTE)).body, '')
  assert.equal(await c.cursor(), 2)
})

test('a put merges by field clocks and body state', async () => {
  const c = await offlineClient()
  await c.applyEvents([ev(1, 'set', h(5000), { fields: { title: 'newer title' } })])
  const doc = newDoc()
  replaceText(doc, 'shared body')
  await c.applyEvents([ev(2, 'put', h(6000), {
    fields: { title: 'older title', tags: ['x'], deleted: false },
    clocks: { title: h(4000), tags: h(4000), deleted: h(4000) },
    body_state: toBase64(Y.encodeStateAsUpdate(doc))
  })])
  const note = await c.note(NOTE)
  assert.deepEqual([note.title, note.tags, note.body], ['newer title', ['x'], 'shared body'])
})

test('a revoke drops the entity and tells subscribers', async () => {
  const c = await offlineClient()
  await c.applyEvents([ev(1, 'set', h(1000), { fields: { title: 'shared' } })])
  const seen = []
  c.subscribe((change) => seen.push(change.ids))
  await c.applyEvents([ev(2, 'revoke', h(2000))])
  assert.equal(await c.note(NOTE), undefined)
  assert.deepEqual(await c.notes({ deleted: null }), [])
  assert.deepEqual(seen, [[NOTE]])
})

test('notification events are kept', async () => {
  const c = await offlineClient()
  await c.applyEvents([
    ev(1, 'milestone', h(1000), { entity: 'project', fields: { percent: 50 } }),
    ev(2, 'conflict', h(1001), { fields: { field: 'title' } })
  ])
  assert.deepEqual((await c.notifications()).map((n) => n.kind), ['milestone', 'conflict'])
  assert.deepEqual((await c.notifications('milestone'))[0].fields, { percent: 50 })
})

test('a remote clock is observed', async () => {
  const c = await offlineClient()
  const future = h(9_000_000_000_000)
  await c.applyEvents([ev(1, 'set', future, { fields: { title: 'far' } })])
  await c.updateNote(NOTE, { title: 'after' })
  assert.equal((await c.note(NOTE)).title, 'after')
  const ops = await c.store.pending(10)
  assert.ok(ops.at(-1).hlc > future)
})

test('our own event with a canonical clock rewrites the local clock', async () => {
  const c = await offlineClient()
  const id = await c.createNote({ title: 'skewed' })
  const [op] = await c.outbox.nextBatch()
  const canonical = formatHlc(1000, 0, DEVICE)
  // the push response was lost: the event of our own op arrives with the canonical hlc
  await c.applyEvents([{ ...ev(1, 'set', canonical, { id, fields: { title: 'skewed' } }), device_id: DEVICE, client_seq: op.client_seq }])
  const row = await c.store.row('note', id)
  assert.equal(row.clocks.title, canonical)
  // ...so a later write by another device now wins, as it does on every replica
  await c.applyEvents([ev(2, 'set', h(2000), { id, fields: { title: 'other' } })])
  assert.equal((await c.note(id)).title, 'other')
})

test('local queries by project, pinned, tag and text', async () => {
  const c = await offlineClient()
  const p = await c.createProject({ title: 'book' })
  const a = await c.createNote({ title: 'Chapter one', project_id: p, tags: ['draft'], pinned: true })
  const b = await c.createNote({ title: 'Groceries', tags: ['home', 'draft'], body: 'milk and bread' })
  const ids = (list) => list.map((n) => n.id).sort()
  assert.deepEqual(ids(await c.notes({ projectId: p })), [a])
  assert.deepEqual(ids(await c.notes({ projectId: null })), [b])
  assert.deepEqual(ids(await c.notes({ pinned: true })), [a])
  assert.deepEqual(ids(await c.notes({ tag: 'draft' })), [a, b].sort())
  assert.deepEqual(ids(await c.notes({ text: 'BREAD' })), [b])
  assert.equal((await c.notes())[0].id, a) // pinned first
  assert.deepEqual((await c.projects()).map((x) => x.title), ['book'])
})

test('a batch larger than one write chunk is applied whole, the cursor last', async () => {
  const c = await offlineClient()
  const events = Array.from({ length: 2500 }, (_, i) => ev(i + 1, 'set', h(1000 + i), {
    id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, fields: { title: `n${i}` }
  }))
  await c.applyEvents(events)
  assert.equal((await c.notes()).length, 2500)
  assert.equal(await c.cursor(), 2500)
})

test('meta keys are LWW fields of their own; null clears a key and keeps its clock', async () => {
  const c = await offlineClient()
  await c.applyEvents([
    ev(1, 'set', h(2000), { fields: { 'meta.color': 'red' } }),
    ev(2, 'set', h(1000), { fields: { 'meta.color': 'blue', 'meta.size': 3 } }),
    ev(3, 'set', h(3000), { fields: { 'meta.size': null } }),
    ev(4, 'set', h(2500), { fields: { 'meta.size': 9 } })
  ])
  const note = await c.note(NOTE)
  assert.deepEqual(note.meta, { color: 'red' })
  assert.equal(note['meta.color'], undefined, 'a view shows meta as one map')
  const row = await c.store.row('note', NOTE)
  assert.equal(row.clocks['meta.size'], h(3000))
})

test('a snapshot entity: meta map and clocks, a clock without a key is a cleared key', async () => {
  const c = await offlineClient()
  await c.applyEvents([ev(1, 'set', h(1000), { fields: { 'meta.gone': 'stale', 'meta.kept': 1 } })])
  await loadSnapshot({ store: c.store, clock: new Clock(DEVICE), deviceId: DEVICE, docs: () => undefined, closeDoc () {} }, {
    cursor: 5,
    projects: [{ id: 'p', title: 'P', status: 'paused', deadline: '2027-03-01', meta: { client: 'Acme' }, clocks: { title: h(1000), status: h(1000), deadline: h(1000), 'meta.client': h(1000) } }],
    notes: [{ id: NOTE, title: 'N', meta: { kept: 2 }, clocks: { title: h(2000), 'meta.gone': h(2000), 'meta.kept': h(2000) } }],
    settings: { id: 'u', values: { theme: 'dark' }, clocks: { theme: h(2000), font: h(2000) }, version: 2 }
  })
  assert.deepEqual((await c.note(NOTE)).meta, { kept: 2 })
  assert.equal((await c.store.row('note', NOTE)).fields['meta.gone'], null)
  const p = await c.project('p')
  assert.deepEqual([p.status, p.deadline, p.meta], ['paused', '2027-03-01', { client: 'Acme' }])
  const s = await c.store.row('settings', 'u')
  assert.deepEqual([s.fields, s.clocks.font], [{ theme: 'dark', font: null }, h(2000)])
})

test('settings events merge per key by HLC; local writes queue set ops on the user id', async () => {
  const c = await offlineClient()
  const settings = (seq, hlc, fields) => ev(seq, 'set', hlc, { entity: 'settings', id: USER, fields })
  await c.applyEvents([settings(1, h(2000), { theme: 'dark' }), settings(2, h(1000), { theme: 'light', font: 14 })])
  assert.deepEqual(await c.settings(), { theme: 'dark', font: 14 })
  await c.setSettings({ font: null, tz: 'Europe/Paris' })
  assert.deepEqual(await c.settings(), { theme: 'dark', tz: 'Europe/Paris' })
  const [op] = await c.store.pending(10)
  assert.deepEqual([op.entity, op.id, op.kind, op.fields], ['settings', USER, 'set', { font: null, tz: 'Europe/Paris' }])
  await c.applyEvents([settings(3, h(1500), { font: 20 })])
  assert.deepEqual(await c.settings(), { theme: 'dark', tz: 'Europe/Paris' }, 'an older write does not bring a cleared key back')
})

test('meta and project fields given to create and update become their fields', async () => {
  const c = await offlineClient()
  const p = await c.createProject({ title: 'Client', status: 'paused', deadline: '2027-01-31', meta: { rate: 80 } })
  await c.updateProject(p, { meta: { rate: null, currency: 'EUR' } })
  const view = await c.project(p)
  assert.deepEqual([view.status, view.deadline, view.meta], ['paused', '2027-01-31', { currency: 'EUR' }])
  const ops = await c.store.pending(10)
  assert.deepEqual(ops[1].fields, { 'meta.rate': null, 'meta.currency': 'EUR' })
  const n = await c.createNote({ title: 'x' })
  assert.deepEqual((await c.note(n)).meta, {})
  await assert.rejects(c.updateNote(n, { colour: 'red' }), RangeError)
})
