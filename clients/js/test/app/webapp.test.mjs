// The notes web app as a person uses it: headless Chromium (playwright-core, CHROMIUM)
// on /app/ of a real syncd (SYNCD_URL), each browser context a device behind its own
// cutting TCP proxy. Sign up, write a note, keep writing offline, reload offline,
// reconnect, and read it on a second device, the server's snapshot agreeing; then a
// conflict listed and settled, local search, and sharing. A screenshot goes to SCREENSHOT.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { chromium } from 'playwright-core'
import { startProxy } from '../browser/proxy.mjs'

const SERVER = process.env.SYNCD_URL
const CHROMIUM = process.env.CHROMIUM
const SCREENSHOT = process.env.SCREENSHOT
if (!SERVER || !CHROMIUM || !SCREENSHOT) throw new Error('SYNCD_URL, CHROMIUM and SCREENSHOT must be set')
const SERVER_PORT = Number(new URL(SERVER).port)
const PASSWORD = 'correct horse battery staple'

let browser
const cleanups = []

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
})

after(async () => {
  for (const fn of cleanups.reverse()) await fn().catch(() => {})
  await browser?.close()
})

async function eventually (check, what, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`never happened: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const checkers = new Map()

/** The notes the server holds for this account, seen by a device of its own. */
async function serverNotes (email) {
  if (!checkers.has(email)) {
    const r = await fetch(SERVER + '/v1/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email, password: PASSWORD, device: { name: 'checker', platform: 'test' } })
    })
    const login = await r.json()
    if (!r.ok) throw new Error(`login: ${r.status} ${JSON.stringify(login)}`)
    checkers.set(email, login.access_token)
  }
  const r = await fetch(SERVER + '/v1/sync/snapshot', { headers: { Authorization: `Bearer ${checkers.get(email)}` } })
  const snapshot = await r.json()
  if (!r.ok) throw new Error(`snapshot: ${r.status} ${JSON.stringify(snapshot)}`)
  return snapshot.notes
}

/** A device: a browser context on the app through its own proxy; CSP violations kept. */
async function device () {
  const proxy = await startProxy(SERVER_PORT)
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 760 } })
  cleanups.push(async () => { await ctx.close(); await proxy.close() })
  const page = await ctx.newPage()
  const errors = []
  page.on('pageerror', (e) => errors.push(String(e)))
  page.on('console', (m) => { if (process.env.SYNCD_TEST_CONSOLE) console.error('page:', m.text()) })
  await page.addInitScript(() => {
    window.cspViolations = []
    document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`))
  })
  const response = await page.goto(`http://127.0.0.1:${proxy.port}/app/`)
  return { page, proxy, errors, csp: response.headers()['content-security-policy'] }
}

async function signIn (d, email, create) {
  await d.page.getByLabel('Email').fill(email)
  await d.page.getByLabel('Password').fill(PASSWORD)
  await d.page.getByRole('button', { name: create ? 'Create account' : 'Sign in' }).click()
  await d.page.getByRole('status').filter({ hasText: 'Online' }).waitFor()
}

const body = (d) => d.page.getByLabel('Note body')

/** Start a note, and wait for its editor (the previous note's one is still there at first). */
async function newNote (d, title) {
  await d.page.getByRole('button', { name: 'New note' }).click()
  await d.page.waitForFunction(() => document.querySelector('input[aria-label="Title"]')?.value === '')
  await d.page.getByLabel('Title').fill(title)
}

test('sign up, write a note, edit it offline, reconnect, read it on a second device', async () => {
  const email = `app${randomBytes(6).toString('hex')}@example.com`
  const a = await device()
  assert.match(a.csp, /script-src 'self'/)
  await signIn(a, email, true)

  await newNote(a, 'Groceries')
  await body(a).click()
  await a.page.keyboard.type('Milk, bread')
  await eventually(async () => (await serverNotes(email)).some((n) => n.title === 'Groceries' && n.body === 'Milk, bread'),
    'the note reaches the server')

  await a.page.evaluate(async () => { await navigator.serviceWorker.ready })
  a.proxy.cut()
  await a.page.getByRole('status').filter({ hasText: 'Offline' }).waitFor()
  await body(a).click()
  await a.page.keyboard.press('End')
  await a.page.keyboard.type(' and eggs, typed offline')
  await a.page.getByText(/changes? to sync/).waitFor()
  // stored: the list shows what the store holds (typing a moment before a page closes
  // may not be, as in any web app; what is stored is queued with it)
  await a.page.getByRole('button', { name: /typed offline/ }).waitFor()
  // a reload without the server: the service worker has the app, IndexedDB the notes
  await a.page.reload()
  await a.page.getByRole('status').filter({ hasText: 'Offline' }).waitFor()
  await a.page.getByRole('button', { name: /Groceries/ }).click()
  assert.equal(await body(a).textContent(), 'Milk, bread and eggs, typed offline')
  await a.page.getByText(/changes? to sync/).waitFor()
  assert.equal((await serverNotes(email))[0].body, 'Milk, bread', 'nothing reached the server while cut off')

  const b = await device()
  await signIn(b, email, false)
  await b.page.getByRole('button', { name: /Groceries/ }).click()
  assert.equal(await body(b).textContent(), 'Milk, bread')

  a.proxy.restore()
  await a.page.getByRole('status').filter({ hasText: 'Online' }).waitFor({ timeout: 30000 })
  const want = 'Milk, bread and eggs, typed offline'
  await eventually(async () => (await serverNotes(email)).some((n) => n.body === want), 'the offline edit reaches the server')
  await eventually(async () => await body(b).textContent() === want, 'the second device shows the offline edit')
  await a.page.getByText(/changes? to sync/).waitFor({ state: 'detached' })

  // the second device writes back, and the first sees it live
  await body(b).click()
  await b.page.keyboard.press('Control+End')
  await b.page.keyboard.type('\nCoffee (from the second device)')
  await eventually(async () => (await body(a).textContent()).includes('Coffee (from the second device)'), 'the first device shows it live')
  const [server] = await serverNotes(email)
  assert.equal(server.title, 'Groceries')
  assert.equal(server.body, `${want}\nCoffee (from the second device)`)

  // a project, a second note, and the first one's history (from the server) for the picture
  await b.page.getByRole('button', { name: 'New project' }).click()
  await b.page.getByLabel('Project name').fill('Kitchen')
  await b.page.keyboard.press('Enter')
  await b.page.getByRole('button', { name: 'Kitchen' }).waitFor()
  await b.page.getByRole('button', { name: 'All notes' }).click()
  await newNote(b, 'Reading list')
  await body(b).click()
  await b.page.keyboard.type('The Dispossessed\nA Wizard of Earthsea')
  await b.page.getByRole('button', { name: /Groceries/ }).click()
  await b.page.getByRole('button', { name: 'History' }).click()
  await b.page.getByRole('region', { name: 'History' }).getByText('typed offline').first().waitFor()
  await a.page.getByRole('button', { name: /Reading list/ }).waitFor()
  await b.page.getByText(/changes? to sync/).waitFor({ state: 'detached' })
  writeFileSync(SCREENSHOT, await b.page.screenshot())

  // a conflict: both devices retitle the note, one of them offline; the app lists it
  // once the offline one is back, and settling it there reaches the other device
  a.proxy.cut()
  await a.page.getByRole('status').filter({ hasText: 'Offline' }).waitFor()
  await a.page.getByLabel('Title').fill('Weekend groceries')
  await a.page.getByText(/changes? to sync/).waitFor()
  await b.page.getByLabel('Title').fill('Shopping') // b has the note open
  await eventually(async () => (await serverNotes(email)).some((n) => n.title === 'Shopping'), 'the online title reaches the server')
  a.proxy.restore()
  await a.page.getByRole('button', { name: '1 conflict' }).click()
  await a.page.getByRole('region', { name: 'Conflicts' }).getByRole('button', { name: 'Use "Weekend groceries"' }).click()
  await eventually(async () => (await serverNotes(email)).some((n) => n.title === 'Weekend groceries'), 'the settled title reaches the server')
  await b.page.getByRole('button', { name: /Weekend groceries/ }).waitFor()
  await a.page.getByRole('button', { name: '1 conflict' }).waitFor({ state: 'hidden' })

  // search is local: it filters the list as you type
  await b.page.getByLabel('Search notes').fill('coffee')
  await b.page.getByRole('button', { name: /Reading list/ }).waitFor({ state: 'detached' })
  await b.page.getByRole('button', { name: /Weekend groceries/ }).waitFor()
  await b.page.getByLabel('Search notes').fill('')

  // sharing: a project shared with another account, who is then listed as a member
  const friend = `friend${randomBytes(6).toString('hex')}@example.com`
  const registered = await fetch(SERVER + '/v1/auth/register', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ email: friend, password: PASSWORD })
  })
  assert.equal(registered.status, 201)
  await b.page.getByRole('button', { name: 'Kitchen' }).click()
  await b.page.locator('.listhead').getByRole('button', { name: 'Share' }).click()
  const sharing = b.page.getByRole('region', { name: 'Sharing' })
  await sharing.getByLabel('Share with (email)').fill(friend)
  await sharing.getByLabel('Role').selectOption('viewer')
  await sharing.getByRole('button', { name: 'Share' }).click()
  await sharing.getByText(friend).waitFor()

  for (const d of [a, b]) {
    assert.deepEqual(await d.page.evaluate(() => window.cspViolations), [], 'the app keeps to its CSP')
    assert.deepEqual(d.errors, [])
  }
})
