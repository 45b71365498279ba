// Figures of the SDK in headless Chromium against a running syncd (SYNCD_URL, CHROMIUM):
// bootstrap a new device from a snapshot of N notes into IndexedDB, apply N pulled
// events, push N queued offline edits. Prints one JSON object; bench/js_browser.py
// starts the server and shows it. Figures, not tests: nothing here asserts a time.
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { build } from 'esbuild'
import { chromium } from 'playwright-core'
import * as Y from 'yjs'

const { values: args } = parseArgs({ options: { notes: { type: 'string', default: '10000' } } })
const N = Number(args.notes)
const SERVER = process.env.SYNCD_URL
const PASSWORD = 'correct horse battery staple'

async function http (method, path, body, token) {
  const headers = { 'Content-Type': 'application/json' }
  if (token) headers.Authorization = `Bearer ${token}`
  const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }
  // once more on a kept-alive connection the server closed while idle (pushes are
  // idempotent by client_seq)
  const r = await fetch(SERVER + path, init).catch(async () => await fetch(SERVER + path, init))
  const data = await r.json()
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(data)}`)
  return data
}

/** A device pushing by hand, to give the browser something to load. */
async function seeder (email) {
  const login = await http('POST', '/v1/auth/login', { email, password: PASSWORD, device: { name: 'seeder', platform: 'bench' } })
  let seq = 0
  let counter = 0
  const hlc = () => `${String(Date.now()).padStart(13, '0')}.${String(counter++ % 1000000).padStart(6, '0')}.${login.device_id}`
  return async (ops) => {
    for (let i = 0; i < ops.length; i += 1000) {
      const batch = ops.slice(i, i + 1000).map((op) => ({ ...op, client_seq: ++seq, hlc: hlc() }))
      await http('POST', '/v1/sync/push', { ops: batch }, login.access_token)
    }
  }
}

function textOp (id, body) {
  const doc = new Y.Doc()
  doc.getText('body').insert(0, body)
  return { entity: 'note', id, kind: 'text', field: 'body', update: Buffer.from(Y.encodeStateAsUpdate(doc)).toString('base64') }
}

const email = `bench${randomBytes(6).toString('hex')}@example.com`
await http('POST', '/v1/auth/register', { email, password: PASSWORD })
const push = await seeder(email)
const ids = Array.from({ length: N }, () => crypto.randomUUID())
await push(ids.flatMap((id, i) => [
  { entity: 'note', id, kind: 'set', fields: { title: `Note ${i}`, tags: [`t${i % 7}`], pinned: i % 10 === 0 } },
  textOp(id, `The body of note ${i}, a sentence or two long. `.repeat(3))
]))

const out = await build({
  entryPoints: [new URL('../test/browser/page.mjs', import.meta.url).pathname],
  bundle: true, format: 'esm', platform: 'browser', target: 'es2022', write: false, logLevel: 'warning'
})
const script = out.outputFiles[0].text
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM, args: ['--no-sandbox', '--disable-features=LocalNetworkAccessChecks']
})
const figures = { notes: N }
try {
  const ctx = await browser.newContext()
  await ctx.route('**/__bench__/**', (route) => route.request().url().endsWith('.js')
    ? route.fulfill({ contentType: 'text/javascript', body: script })
    : route.fulfill({ contentType: 'text/html', body: '<!doctype html><script type="module" src="/__bench__/page.js"></script>' }))
  const page = await ctx.newPage()
  await page.goto(`${SERVER}/__bench__/index.html`)
  await page.waitForFunction(() => typeof window.openClient === 'function')

  Object.assign(figures, await page.evaluate(async ([email, password]) => {
    await window.openClient(email)
    const c = window.client
    await c.login(email, password, 'bench browser')
    let t = performance.now()
    await c.api.snapshot()
    const snapshotFetchMs = performance.now() - t
    t = performance.now()
    await c.bootstrap()
    const bootstrapMs = performance.now() - t
    return { snapshotFetchMs, bootstrapMs, notesLoaded: (await c.notes()).length }
  }, [email, PASSWORD]))

  // N events to pull: a title change on every note, by the other device
  await push(ids.map((id, i) => ({ entity: 'note', id, kind: 'set', fields: { title: `Renamed ${i}` } })))
  Object.assign(figures, await page.evaluate(async () => {
    const c = window.client
    let t = performance.now()
    const events = []
    let cursor = await c.cursor()
    for (;;) {
      const page = await c.api.pull(cursor, 5000)
      events.push(...page.events)
      cursor = page.cursor
      if (!page.has_more || page.events.length === 0) break
    }
    const pullFetchMs = performance.now() - t
    t = performance.now()
    await c.applyEvents(events)
    return { eventsApplied: events.length, pullFetchMs, applyEventsMs: performance.now() - t }
  }))

  Object.assign(figures, await page.evaluate(async (ids) => {
    const c = window.client
    let t = performance.now()
    for (let i = 0; i < ids.length; i++) await c.updateNote(ids[i], { title: `Offline ${i}` })
    const queueMs = performance.now() - t
    const queued = await c.pending()
    t = performance.now()
    const pushed = await c.push()
    return { queued, queueMs, pushed, pushMs: performance.now() - t }
  }, ids))
} finally {
  await browser.close()
}
console.log(JSON.stringify(figures))
