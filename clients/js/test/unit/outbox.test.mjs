// Push results without a network: the outbox's reaction to applied, duplicate, rejected
// and client_seq_gap (the same cases as the Python SDK's tests/test_outbox.py).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseHlc } from '../../dist/index.js'
import { DEVICE, offlineClient } from './helpers.mjs'

function answer (ops, status = 'applied', extra = {}, acked) {
  const seqs = ops.map((o) => o.client_seq)
  return { acked: acked ?? Math.max(...seqs), cursor: seqs.length, results: seqs.map((s) => ({ client_seq: s, status, ...extra })) }
}

test('ops are numbered and carry base', async () => {
  const c = await offlineClient()
  await c.store.commit({ meta: { cursor: 17 } })
  const a = await c.createNote({ title: 'a' })
  await c.updateNote(a, { pinned: true })
  await c.deleteNote(a)
  const ops = await c.store.pending(100)
  assert.deepEqual(ops.map((o) => o.client_seq), [1, 2, 3])
  assert.deepEqual(ops.map((o) => o.kind), ['set', 'set', 'delete'])
  assert.ok(ops.every((o) => o.base === 17 && o.id === a))
  assert.deepEqual(ops.map((o) => o.hlc), ops.map((o) => o.hlc).sort())
  assert.ok(ops.every((o) => parseHlc(o.hlc).node === DEVICE))
})

test('client_seq survives a reopened store and is never reused', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'syncd-js-')), 'device.db')
  const first = await offlineClient(path)
  await first.createNote({ title: 'one' })
  await first.createNote({ title: 'two' })
  await first.close()
  const again = await offlineClient(path)
  await again.createNote({ title: 'three' })
  assert.deepEqual((await again.store.pending(10)).map((o) => [o.client_seq, o.fields.title]),
    [[1, 'one'], [2, 'two'], [3, 'three']])
  await again.close()
})

test('applied ops leave the outbox and adopt the canonical hlc', async () => {
  const c = await offlineClient()
  const id = await c.createNote({ title: 't' })
  const ops = await c.outbox.nextBatch()
  const canonical = `1000000000000.000000.${DEVICE}`
  await c.outbox.onResponse(ops, answer(ops, 'applied', { hlc: canonical }))
  assert.equal(await c.pending(), 0)
  assert.equal(await c.acked(), 1)
  const row = await c.store.row('note', id)
  assert.deepEqual(new Set(Object.values(row.clocks)), new Set([canonical]))
})

test('a lost response is retried as duplicate and not applied twice', async () => {
  const c = await offlineClient()
  const id = await c.createNote({ title: 'once' })
  await c.setBody(id, 'abc')
  const first = await c.outbox.nextBatch()
  await c.insertText(id, 3, 'd') // the response to `first` was lost; the user types on
  const retry = await c.outbox.nextBatch()
  assert.deepEqual(retry.map((o) => o.client_seq), [1, 2, 3])
  assert.deepEqual(retry.slice(0, 2), first)
  await c.outbox.onResponse(retry, { acked: 3, cursor: 3, results: [
    { client_seq: 1, status: 'duplicate' }, { client_seq: 2, status: 'duplicate' }, { client_seq: 3, status: 'applied' }] })
  assert.equal(await c.pending(), 0)
  assert.equal((await c.note(id)).body, 'abcd')
})

test('rejected ops are recorded and do not block', async () => {
  const c = await offlineClient()
  const id = await c.createNote({ title: 'x'.repeat(600) })
  await c.createNote({ title: 'fine' })
  const ops = await c.outbox.nextBatch()
  await c.outbox.onResponse(ops, { acked: 2, cursor: 1, results: [
    { client_seq: 1, status: 'rejected', code: 'validation', message: 'title too long' },
    { client_seq: 2, status: 'applied' }] })
  assert.equal(await c.pending(), 0)
  const [rej] = await c.rejections()
  assert.deepEqual([rej.client_seq, rej.id, rej.code, rej.message], [1, id, 'validation', 'title too long'])
  const row = await c.store.row('note', id)
  assert.deepEqual(new Set(Object.values(row.clocks)), new Set([''])) // any remote write wins
})

test('a gap drops consumed ops', async () => {
  const c = await offlineClient()
  for (let i = 0; i < 4; i++) await c.createNote({ title: String(i) })
  await c.outbox.onGap(3) // 1 and 2 were consumed by a push we never heard of
  assert.deepEqual((await c.store.pending(10)).map((o) => o.client_seq), [3, 4])
  assert.equal(await c.acked(), 2)
})

test('a gap below the head renumbers from expected', async () => {
  const c = await offlineClient()
  await c.store.commit({ meta: { next_seq: 10 } }) // a store restored from an older copy
  await c.createNote({ title: 'a' })
  await c.createNote({ title: 'b' })
  await c.outbox.onGap(4)
  assert.deepEqual((await c.store.pending(10)).map((o) => [o.client_seq, o.fields.title]), [[4, 'a'], [5, 'b']])
  await c.createNote({ title: 'c' })
  assert.equal((await c.store.pending(10)).at(-1).client_seq, 6)
})

test('push batches are at most 1000 ops', async () => {
  const c = await offlineClient()
  const id = await c.createNote({ title: 'n' })
  for (let i = 0; i < 1200; i++) await c.updateNote(id, { title: String(i) })
  assert.equal((await c.outbox.nextBatch()).length, 1000)
})

test('our own pulled events consume the ops whose push response was lost', async () => {
  const c = await offlineClient()
  const a = await c.createNote({ title: 'a' })
  const b = await c.createNote({ title: 'b' })
  await c.createNote({ title: 'c' })
  const sent = await c.outbox.nextBatch() // pushed, and the response lost
  const own = (seq, id, title) => ({ seq, entity: 'note', id, kind: 'set', hlc: sent[seq - 1].hlc, device_id: DEVICE, client_seq: seq, fields: { title } })
  await c.applyEvents([own(1, a, 'a'), own(2, b, 'b')])
  assert.deepEqual((await c.store.pending(10)).map((o) => o.client_seq), [3])
  assert.equal(await c.acked(), 2)
})
