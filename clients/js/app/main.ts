/**
 * The notes web app: boot. One IndexedDB store per account, opened by the account's email
 * (kept in localStorage), so a reload or a cold start offline opens straight to the notes.
 */
import { SyncClient, openIndexedDbStore } from '../src/index.js'
import { signIn } from './signin.js'
import { workspace } from './workspace.js'

const ACCOUNT = 'syncd.account'
const root = document.getElementById('app') as HTMLElement

async function open (email: string): Promise<SyncClient> {
  const store = await openIndexedDbStore(`syncd-${email.toLowerCase()}`, {
    onBlocked: () => { root.textContent = 'Close the other tabs of these notes to finish updating.' }
  })
  // a newer version of the app in another tab took the database: this code is older
  store.onVersionChange(() => location.reload())
  // people wait on a reconnect: retry sooner than the SDK's default 30 s cap
  return await SyncClient.open(store, { url: location.origin, backoffCap: 5000 })
}

async function showSignIn (): Promise<void> {
  signIn(root, async (email, password, create) => {
    const client = await open(email)
    try {
      if (create) await client.register(email, password)
      await client.login(email, password, deviceName())
    } catch (e) {
      await client.close()
      throw e
    }
    localStorage.setItem(ACCOUNT, email)
    await showWorkspace(client)
  })
}

async function showWorkspace (client: SyncClient): Promise<void> {
  workspace(root, client, async () => {
    localStorage.removeItem(ACCOUNT)
    await client.close()
    await showSignIn()
  })
  if (await client.cursor() === 0) await client.bootstrap().catch(() => undefined) // offline: later
  client.start()
}

function deviceName (): string {
  const ua = navigator.userAgent
  const browser = /Firefox/.test(ua) ? 'Firefox' : /Edg\//.test(ua) ? 'Edge' : /Chrom/.test(ua) ? 'Chromium' : /Safari/.test(ua) ? 'Safari' : 'Browser'
  return `${browser} on ${navigator.platform || 'the web'}`
}

async function boot (): Promise<void> {
  const email = localStorage.getItem(ACCOUNT)
  if (email !== null) {
    const client = await open(email)
    if (client.deviceId !== undefined && await client.signedIn()) return await showWorkspace(client)
    await client.close()
  }
  await showSignIn()
}

// the app's files kept for offline starts (the notes themselves are in IndexedDB)
if ('serviceWorker' in navigator) void navigator.serviceWorker.register('sw.js').catch(() => undefined)
void boot()
