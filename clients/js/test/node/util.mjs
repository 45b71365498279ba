// Devices for the tests against a real syncd (SYNCD_URL): each a SyncClient on its own
// SQLite file, talking through the `ws` package (Node 20 has no global WebSocket).
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import WebSocket from 'ws'
import { SyncClient } from '../../dist/index.js'
import { openSqliteStore } from '../../dist/sqlite-store.js'

export const URL_ = process.env.SYNCD_URL
if (!URL_) throw new Error('SYNCD_URL must name a running syncd server')
export const PASSWORD = 'correct horse battery staple'
const dir = mkdtempSync(join(tmpdir(), 'syncd-node-'))
let n = 0

export function newEmail () {
  return `js${randomBytes(6).toString('hex')}@example.com`
}

export async function openDevice (path = join(dir, `device-${n++}.db`)) {
  const store = openSqliteStore(path)
  return await SyncClient.open(store, { url: URL_, WebSocket, backoffBase: 50, backoffCap: 500 })
}

export async function newDevice (email, name = 'node') {
  const c = await openDevice()
  await c.login(email, PASSWORD, name, 'node')
  return c
}

export async function newUser (name = 'laptop') {
  const email = newEmail()
  const c = await openDevice()
  await c.register(email, PASSWORD)
  await c.login(email, PASSWORD, name, 'node')
  return { email, client: c }
}

/** Poll `check` until it returns a truthy value (a behaviour that happens, not a timing). */
export async function eventually (check, what = 'condition', timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`never happened: ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
}

/** What the server says, as {id: entity}, for comparing a replica with it. */
export async function serverNotes (client) {
  const snap = await client.api.snapshot()
  return Object.fromEntries(snap.notes.map((n) => [n.id, n]))
}
