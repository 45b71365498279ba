// The SDK in headless Chromium (playwright-core, Debian's chromium via CHROMIUM) against
// a real syncd (SYNCD_URL). Each browser context is one device, reaching the server
// through its own cutting TCP proxy; assertions compare pages with the server's snapshot.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { build } from 'esbuild'
import { chromium } from 'playwright-core'
import { startProxy } from './proxy.mjs'

const SERVER = process.env.SYNCD_URL
const CHROMIUM = process.env.CHROMIUM
if (!SERVER || !CHROMIUM) throw new Error('SYNCD_URL and CHROMIUM must be set')
const SERVER_PORT = Number(new URL(SERVER).port)
const PASSWORD = 'correct horse battery staple'
const HTML = '<!doctype html><meta charset="utf-8"><title>syncd test</title><script type="module" src="/__test__/page.js"></script>'

let browser
let script
const cleanups = []

before(async () => {
  const out = await build({
    entryPoints: [new URL('./page.mjs', import.meta.url).pathname],
    bundle: true, format: 'esm', platform: 'browser', target: 'es2022', write: false, logLevel: 'warning'
  })
  script = out.outputFiles[0].text
  // The test page is served by the test (route.fulfill), not from an address, so Chromium
  // would treat it as a public page and block its WebSockets to the loopback proxy.
  browser = await chromium.launch({
    executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-features=LocalNetworkAccessChecks']
  })
})

after(async () => {
  for (const fn of cleanups.reverse()) await fn().catch(() => {})
  await browser?.close()
})

// --- the server, seen directly ---------------------------------------------------------

async function http (method, path, body, token) {
  const headers = { 'Content-Type': 'application/json' }
  if (token) headers.Authorization = `Bearer ${token}`
  const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }
  // once more on a kept-alive connection the server closed while idle (pushes are
  // idempotent by client_seq)
  const r = await fetch(SERVER + path, init).catch(async () => await fetch(SERVER + path, init))
  const data = await r.json().catch(() => null)
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(data)}`)
  return data
}

async function newAccount () {
  const email = `web${randomBytes(6).toString('hex')}@example.com`
  await http('POST', '/v1/auth/register', { email, password: PASSWORD })
  const login = await http('POST', '/v1/auth/login', { email, password: PASSWORD, device: { name: 'checker', platform: 'test' } })
  return { email, token: login.access_token }
}

async function serverNotes (account) {
  const snap = await http('GET', '/v1/sync/snapshot', undefined, account.token)
  return Object.fromEntries(snap.notes.map((n) => [n.id, n]))
}

async function serverEvents (account) {
  const events = []
  let cursor = 0
  for (;;) {
    const page = await http('GET', `/v1/sync/pull?cursor=${cursor}&limit=5000`, undefined, account.token)
    events.push(...page.events)
    cursor = page.cursor
    if (!page.has_more || page.events.length === 0) return events
  }
}

async function eventually (check, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`never happened: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

// --- devices: a browser context behind a proxy ------------------------------------------

async function device (context) {
  const proxy = context?.proxy ?? await startProxy(SERVER_PORT)
  const ctx = context?.ctx ?? await browser.newContext()
  if (context === undefined) {
    cleanups.push(async () => { await ctx.close(); await proxy.close() })
    await ctx.route('**/__test__/**', (route) => {
      const js = route.request().url().endsWith('.js')
      return route.fulfill({ status: 200, contentType: js ? 'text/javascript' : 'text/html', body: js ? script : HTML })
    })
  }
  const page = await ctx.newPage()
  page.on('pageerror', (e) => console.error('page error:', e))
  const consoleLines = []
  page.on('console', (m) => { consoleLines.push(m.text()); if (process.env.SYNCD_TEST_CONSOLE) console.error('page:', m.text()) })
  await page.goto(`http://127.0.0.1:${proxy.port}/__test__/index.html`)
  await page.waitForFunction(() => typeof window.openClient === 'function')
  return { page, proxy, ctx, console: consoleLines }
}

async function signIn (d, email, name, account = email) {
  await d.page.evaluate(async ([account, email, password, name]) => {
    await window.openClient(account)
    await window.client.login(email, password, name, 'browser')
  }, [account, email, PASSWORD, name])
}

const status = (d) => d.page.evaluate(() => window.client.status)
const note = (d, id) => d.page.evaluate((id) => window.client.note(id), id)
const pending = (d) => d.page.evaluate(() => window.client.pending())

// --- tests ----------------------------------------------------------------------------

test('the store suite passes against IndexedDB', async () => {
  const d = await device()
  const results = await d.page.evaluate(() => window.runStoreSuite())
  assert.ok(results.length >= 10)
  const failed = results.filter((r) => !r.ok)
  assert.deepEqual(failed, [])
  const layout = await d.page.evaluate(() => window.checkIndexedDbLayout())
  assert.ok(layout.packed <= 5, `500 new notes' states in ${layout.packed} records`)
  assert.equal(layout.few, 5, 'a few new notes keep a record each')
  assert.equal(layout.notes, 505)
  assert.ok(layout.notePacks <= 256, `505 notes in ${layout.notePacks} records`)
})

test('a database of one record per note opens with every note in packs', async () => {
  const d = await device()
  const { problems, stores } = await d.page.evaluate(() => window.checkUpgradeFromNoteRecords())
  assert.deepEqual(problems, [])
  assert.ok(stores.includes('notePacks') && !stores.includes('notes'), stores.join(' '))
})

test('a newer version of the app in another tab takes the database at once', async () => {
  const older = await device()
  const newer = await device({ ctx: older.ctx, proxy: older.proxy }) // a second tab
  const name = `tabs-${Date.now()}`
  await older.page.evaluate((name) => window.holdStore(name), name)
  // not blocked: the older tab's store closed when asked, after committing what it had
  assert.equal(await newer.page.evaluate((name) => window.openNewer(name), name), 'yes')
  assert.deepEqual(await older.page.evaluate(() => window.heldStore()),
    { changes: 1, stale: true, call: 'StaleStore' })
  await older.page.close()
  await newer.page.close()
})

test('two devices offline edit one note, reconnect and converge to the server', async () => {
  const account = await newAccount()
  const a = await device()
  const b = await device()
  await signIn(a, account.email, 'browser a')
  await signIn(b, account.email, 'browser b')
  const id = await a.page.evaluate(async () => {
    const id = await window.client.createNote({ title: 'first', body: 'middle' })
    await window.client.sync()
    return id
  })
  await b.page.evaluate(() => window.client.bootstrap())
  for (const d of [a, b]) await d.page.evaluate(() => window.client.start())
  await eventually(async () => await status(a) === 'online' && await status(b) === 'online', 'both online')

  for (const d of [a, b]) d.proxy.cut()
  await eventually(async () => await status(a) !== 'online' && await status(b) !== 'online', 'both offline')
  await a.page.evaluate(async (id) => {
    await window.client.updateNote(id, { title: 'title from a' })
    await window.client.insertText(id, 0, 'A says ')
  }, id)
  await b.page.evaluate(async (id) => {
    await window.client.insertText(id, 'middle'.length, ' B says')
    await window.client.updateNote(id, { title: 'title from b', pinned: true })
  }, id)
  assert.equal(await pending(a), 2)
  assert.equal(await pending(b), 2)

  for (const d of [a, b]) {
    d.proxy.restore()
    await d.page.evaluate(() => window.client.reconnect())
  }
  const server = await eventually(async () => {
    const n = (await serverNotes(account))[id]
    return n.body.includes('A says') && n.body.includes('B says') && n.title === 'title from b' ? n : null
  }, 'both offline edits reach the server')
  for (const d of [a, b]) {
    await eventually(async () => {
      const local = await note(d, id)
      return local.title === server.title && local.body === server.body && local.pinned === true && await pending(d) === 0
    }, 'the device converges to the snapshot')
  }
  assert.equal(server.body, 'A says middle B says')
  // fields by HLC: b's title was written after a's, on every replica
  assert.ok(server.clocks.title.endsWith(await b.page.evaluate(() => window.client.deviceId)))
})

test('a reload while offline keeps the queued ops, which reach the log exactly once', async () => {
  const account = await newAccount()
  const d = await device()
  await signIn(d, account.email, 'reloading browser')
  await d.page.evaluate(() => window.client.start())
  await eventually(async () => await status(d) === 'online', 'online')
  d.proxy.cut()
  await eventually(async () => await status(d) !== 'online', 'offline')
  const ids = await d.page.evaluate(async () => {
    const c = window.client
    const a = await c.createNote({ title: 'offline 1', body: 'typed offline' })
    const b = await c.createNote({ title: 'offline 2', tags: ['x'] })
    await c.updateNote(a, { pinned: true })
    return [a, b]
  })
  const queued = await pending(d)
  assert.equal(queued, 4)
  const deviceId = await d.page.evaluate(() => window.client.deviceId)

  await d.page.reload()
  await d.page.waitForFunction(() => typeof window.openClient === 'function')
  await d.page.evaluate((email) => window.openClient(email), account.email)
  assert.equal(await pending(d), queued, 'the outbox survived the reload')
  assert.equal((await note(d, ids[0])).body, 'typed offline')
  d.proxy.restore()
  await d.page.evaluate(() => window.client.start())
  await eventually(async () => await pending(d) === 0, 'the outbox is pushed')
  await d.page.evaluate(() => window.client.sync()) // and once more, for nothing
  const mine = (await serverEvents(account)).filter((e) => e.device_id === deviceId && e.client_seq)
  assert.deepEqual(mine.map((e) => e.client_seq).sort((x, y) => x - y), [1, 2, 3, 4])
  const server = await serverNotes(account)
  assert.equal(server[ids[0]].body, 'typed offline')
  assert.equal(server[ids[0]].pinned, true)
  assert.deepEqual(server[ids[1]].tags, ['x'])
})

test('an edit in one page appears live in the other', async () => {
  const account = await newAccount()
  const a = await device()
  const b = await device()
  await signIn(a, account.email, 'a')
  await signIn(b, account.email, 'b')
  for (const d of [a, b]) await d.page.evaluate(() => window.client.start())
  await eventually(async () => await status(a) === 'online' && await status(b) === 'online', 'both online')
  await b.page.evaluate(() => {
    window.seen = []
    window.client.subscribe((change) => window.seen.push(...change.ids))
  })
  const id = await a.page.evaluate(() => window.client.createNote({ title: 'live', body: 'from page a' }))
  await eventually(async () => (await note(b, id))?.body === 'from page a', 'the note appears in b')
  assert.ok(await b.page.evaluate((id) => window.seen.includes(id), id))
  await a.page.evaluate((id) => window.client.updateNote(id, { title: 'renamed' }), id)
  await eventually(async () => (await note(b, id))?.title === 'renamed', 'the rename appears in b')
})

test('two pages co-edit a body through the stock y-websocket provider', async () => {
  const account = await newAccount()
  const a = await device()
  const b = await device()
  await signIn(a, account.email, 'a')
  await signIn(b, account.email, 'b')
  const id = await a.page.evaluate(async () => {
    const id = await window.client.createNote({ title: 'co-edit', body: '|' })
    await window.client.sync()
    return id
  })
  await b.page.evaluate(() => window.client.bootstrap())
  assert.equal(await a.page.evaluate((id) => window.collab(id), id), '|')
  assert.equal(await b.page.evaluate((id) => window.collab(id), id), '|')
  await a.page.evaluate(() => { for (const w of ['one ', 'two ']) window.provider.doc.getText('body').insert(0, w) })
  await b.page.evaluate(() => { const t = window.provider.doc.getText('body'); for (const w of [' three', ' four']) t.insert(t.length, w) })
  const text = 'two one | three four'
  for (const d of [a, b]) {
    await eventually(() => d.page.evaluate(() => window.provider.doc.getText('body').toString()).then((s) => s === text), 'the pages converge')
  }
  await eventually(async () => (await serverNotes(account))[id].body === text, 'the server stores it')
  // the provider's edits are in the local store too (queued as ops when made here)
  await a.page.evaluate(() => window.client.flush())
  assert.equal((await note(a, id)).body, text)
})

test('a viewer cannot edit, and the server refuses when it tries', async () => {
  const owner = await newAccount()
  const viewer = await newAccount()
  const o = await device()
  const v = await device()
  await signIn(o, owner.email, 'owner')
  await signIn(v, viewer.email, 'viewer')
  const id = await o.page.evaluate(async (email) => {
    const c = window.client
    const p = await c.createProject({ title: 'shared' })
    const id = await c.createNote({ title: 'read me', project_id: p, body: 'original' })
    await c.sync()
    await c.share(p, email, 'viewer')
    return id
  }, viewer.email)
  await v.page.evaluate(() => window.client.sync())
  assert.equal((await note(v, id)).body, 'original')
  const refused = await v.page.evaluate(async (id) => {
    const c = window.client
    const role = await c.role('note', id)
    const error = await c.updateNote(id, { title: 'mine now' }).then(() => null, (e) => [e.name, e.code])
    return { role, error, pending: await c.pending() }
  }, id)
  assert.deepEqual(refused, { role: 'viewer', error: ['ReadOnly', 'forbidden'], pending: 0 })

  // it tries anyway: an op pushed by hand, and a text update through the provider
  await v.page.evaluate(async (id) => {
    const c = window.client
    await c.store.commit({ enqueue: [{ hlc: window.syncd.formatHlc(Date.now(), 0, c.deviceId), entity: 'note', id, kind: 'set', fields: { title: 'mine now' } }] })
    await c.sync()
    await window.collab(id)
    window.provider.doc.getText('body').insert(0, 'vandal ')
  }, id)
  const rejections = await v.page.evaluate(() => window.client.rejections())
  assert.deepEqual(rejections.map((r) => r.code), ['forbidden'])
  await eventually(() => v.console.some((line) => /permission denied/i.test(line)), 'the collab server answers permission denied')
  // a later edit by the owner is stored, and the viewer's is not
  await o.page.evaluate(async (id) => { await window.client.insertText(id, 0, 'owner: '); await window.client.sync() }, id)
  const server = await eventually(async () => {
    const n = (await serverNotes(owner))[id]
    return n.body.startsWith('owner: ') ? n : null
  }, 'the owner edit is stored')
  assert.equal(server.body, 'owner: original')
  assert.equal(server.title, 'read me')
})

test('tabs: one syncs, the others follow, and no client_seq is used twice', async () => {
  const account = await newAccount()
  const first = await device()
  await signIn(first, account.email, 'tabs')
  const second = await device(first) // the same context: same origin, same IndexedDB
  await second.page.evaluate((email) => window.openClient(email), account.email)
  for (const d of [first, second]) await d.page.evaluate(() => window.client.start())
  await eventually(async () => await status(first) === 'online', 'the first tab syncs')
  assert.equal(await status(second), 'standby')
  await first.page.evaluate(() => {
    window.seen = []
    window.client.subscribe((change) => window.seen.push([change.source, ...change.ids]))
  })
  const made = await Promise.all([first, second].map((d, i) => d.page.evaluate(async (i) => {
    const ids = []
    for (let k = 0; k < 10; k++) ids.push(await window.client.createNote({ title: `tab ${i} note ${k}` }))
    return ids
  }, i)))
  const all = made.flat()
  await eventually(async () => await pending(first) === 0, 'the syncing tab pushed both tabs\' ops')
  const server = await serverNotes(account)
  assert.ok(all.every((id) => server[id] !== undefined))
  const deviceId = await first.page.evaluate(() => window.client.deviceId)
  const seqs = (await serverEvents(account)).filter((e) => e.device_id === deviceId).map((e) => e.client_seq)
  assert.equal(new Set(seqs).size, 20)
  assert.deepEqual([...seqs].sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i + 1))
  // the first tab saw the second tab's notes as they were made
  const seenFromTab = await first.page.evaluate(() => window.seen.filter((s) => s[0] === 'tab').flatMap((s) => s.slice(1)))
  assert.ok(made[1].every((id) => seenFromTab.includes(id)))
  // closing the syncing tab hands the sync to the other one
  await first.page.close()
  await eventually(async () => await status(second) === 'online', 'the second tab takes over')
})
