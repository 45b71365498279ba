// Settings and an app's own `meta` fields under Node against a real syncd server: two
// devices editing different keys offline both keep theirs, the same key resolves by HLC,
// a new device bootstraps them, the sync socket carries them, and a value past the
// server's bounds comes back as a rejection with its code.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { eventually, newDevice, newUser, serverNotes } from './util.mjs'

/** The device whose last write to `field` of the row carries the greater clock. */
async function later (a, b, entity, id, field) {
  const ca = (await a.store.row(entity, id)).clocks[field]
  const cb = (await b.store.row(entity, id)).clocks[field]
  assert.notEqual(ca, cb)
  return ca > cb ? [a, b] : [b, a]
}

test('settings: different keys edited offline on two devices both survive', async () => {
  const { email, client: a } = await newUser()
  const b = await newDevice(email, 'phone')
  await a.setSettings({ theme: 'dark', notify: { mentions: true } })
  await b.setSettings({ font_size: 15, time_zone: 'Europe/Paris' })
  await b.sync()
  await a.sync()
  await b.sync()
  const want = { theme: 'dark', notify: { mentions: true }, font_size: 15, time_zone: 'Europe/Paris' }
  assert.deepEqual(await a.settings(), want)
  assert.deepEqual(await b.settings(), want)
  const server = await a.api.call('GET', '/v1/settings')
  assert.deepEqual(server.values, want)
  assert.equal(server.id, a.userId)

  // null clears a key everywhere; a new device bootstraps what is left
  await b.setSettings({ notify: null })
  await b.sync()
  await a.sync()
  const rest = { theme: 'dark', font_size: 15, time_zone: 'Europe/Paris' }
  assert.deepEqual(await a.settings(), rest)
  const c = await newDevice(email, 'tablet')
  await c.bootstrap()
  assert.deepEqual(await c.settings(), rest)
  assert.ok((await c.store.row('settings', c.userId)).clocks.notify, 'a cleared key keeps its clock')
  for (const d of [a, b, c]) await d.close()
})

test('settings: the same key edited offline on two devices resolves by HLC', async () => {
  const { email, client: a } = await newUser()
  const b = await newDevice(email, 'phone')
  await a.setSettings({ theme: 'from a' })
  await b.setSettings({ theme: 'from b' })
  const [winner, loser] = await later(a, b, 'settings', a.userId, 'theme')
  const value = (await winner.settings()).theme
  // the winner's write reaches the server first: the older one arriving later loses
  await winner.sync()
  await loser.sync()
  await winner.sync()
  assert.equal((await a.settings()).theme, value)
  assert.equal((await b.settings()).theme, value)
  assert.equal((await a.api.call('GET', '/v1/settings')).values.theme, value)
  for (const d of [a, b]) await d.close()
})

test('meta: different keys offline both survive, the same key resolves by HLC', async () => {
  const { email, client: a } = await newUser()
  const p = await a.createProject({ title: 'Client hub', status: 'paused', deadline: '2027-02-28', meta: { rate: 80 } })
  const id = await a.createNote({ title: 'Brief', project_id: p, meta: { color: 'red' } })
  await a.sync()
  const b = await newDevice(email, 'phone')
  await b.bootstrap()
  assert.deepEqual((await b.note(id)).meta, { color: 'red' })
  const project = await b.project(p)
  assert.deepEqual([project.status, project.deadline, project.meta], ['paused', '2027-02-28', { rate: 80 }])

  await a.updateNote(id, { meta: { folder: 'work', label: 'from a' } })
  await b.updateNote(id, { meta: { stars: 3, label: 'from b', color: null } })
  await b.updateProject(p, { status: 'active', meta: { currency: 'EUR' } })
  const [winner] = await later(a, b, 'note', id, 'meta.label')
  const label = (await winner.note(id)).meta.label
  await a.sync()
  await b.sync()
  await a.sync()
  const want = { folder: 'work', stars: 3, label }
  assert.deepEqual((await a.note(id)).meta, want)
  assert.deepEqual((await b.note(id)).meta, want)
  assert.deepEqual((await serverNotes(a))[id].meta, want)
  assert.deepEqual((await a.project(p)).meta, { rate: 80, currency: 'EUR' })
  assert.equal((await a.project(p)).status, 'active')
  for (const d of [a, b]) await d.close()
})

test('settings and meta reach another device over the sync socket', async () => {
  const { email, client: a } = await newUser()
  const b = await newDevice(email, 'phone')
  const id = await a.createNote({ title: 'live' })
  await a.sync()
  await b.sync()
  b.start()
  await eventually(() => b.status === 'online', 'b online')
  await a.setSettings({ theme: 'sepia' })
  await a.updateNote(id, { meta: { pinned_at: '2026-12-07' } })
  await a.sync()
  await eventually(async () => (await b.settings()).theme === 'sepia', 'the setting reaches b')
  await eventually(async () => (await b.note(id)).meta.pinned_at === '2026-12-07', 'the meta key reaches b')
  for (const d of [a, b]) await d.close()
})

test('a value past the bounds is rejected with validation and changes nothing on the server', async () => {
  const { client: a } = await newUser()
  await a.setSettings({ theme: 'dark' })
  const id = await a.createNote({ title: 'n' })
  await a.sync()
  await a.setSettings({ theme: 'light', wallpaper: 'x'.repeat(9 * 1024) }) // a value holds 8 KiB
  await a.updateNote(id, { meta: { blob: 'y'.repeat(17 * 1024) } }) // a meta map 16 KiB
  await a.sync()
  const rejected = await a.rejections()
  assert.deepEqual(rejected.map((r) => [r.entity, r.code]), [['settings', 'validation'], ['note', 'validation']])
  assert.equal(await a.pending(), 0, 'a refused op is not retried')
  assert.deepEqual((await a.api.call('GET', '/v1/settings')).values, { theme: 'dark' })
  assert.deepEqual((await serverNotes(a))[id].meta, {})
  for (const d of [a]) await d.close()
})
