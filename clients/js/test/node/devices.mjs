// A driver for tests that mix SDKs: a Node device (SQLite) and a browser device
// (IndexedDB in headless Chromium) of one account, commanded one JSON line at a time on
// stdin: {"device": "node"|"browser", "method": "createNote", "args": [...]} → one JSON
// line {"ok": result} or {"error": message}. `lostPush` pushes the next batch and drops
// the response. Needs SYNCD_URL and CHROMIUM; the account's email and password come as
// arguments.
import { createInterface } from 'node:readline'
import { build } from 'esbuild'
import { chromium } from 'playwright-core'
import WebSocket from 'ws'
import { SyncClient } from '../../dist/index.js'
import { openSqliteStore } from '../../dist/sqlite-store.js'

const [email, password] = process.argv.slice(2)
const SERVER = process.env.SYNCD_URL

const nodeClient = await SyncClient.open(openSqliteStore(':memory:'), { url: SERVER, WebSocket })
await nodeClient.login(email, password, 'node device', 'node')

const out = await build({
  entryPoints: [new URL('../browser/page.mjs', import.meta.url).pathname],
  bundle: true, format: 'esm', platform: 'browser', target: 'es2022', write: false, logLevel: 'warning'
})
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM, args: ['--no-sandbox', '--disable-features=LocalNetworkAccessChecks']
})
const ctx = await browser.newContext()
await ctx.route('**/__test__/**', (route) => route.request().url().endsWith('.js')
  ? route.fulfill({ contentType: 'text/javascript', body: out.outputFiles[0].text })
  : route.fulfill({ contentType: 'text/html', body: '<!doctype html><script type="module" src="/__test__/page.js"></script>' }))
const page = await ctx.newPage()
await page.goto(`${SERVER}/__test__/index.html`)
await page.waitForFunction(() => typeof window.openClient === 'function')
await page.evaluate(async ([email, password]) => {
  await window.openClient(email)
  await window.client.login(email, password, 'browser device', 'browser')
}, [email, password])

async function call (device, method, args) {
  if (device === 'browser') {
    return await page.evaluate(async ([method, args]) => {
      return method === 'lostPush' ? await window.lostPush() : await window.client[method](...args)
    }, [method, args])
  }
  if (method === 'lostPush') {
    const ops = await nodeClient.store.exclusive(() => nodeClient.outbox.nextBatch())
    if (ops.length > 0) await nodeClient.api.push(ops)
    return ops.length
  }
  return await nodeClient[method](...args)
}

process.stdout.write(JSON.stringify({ ready: true }) + '\n')
for await (const line of createInterface({ input: process.stdin })) {
  const { device, method, args } = JSON.parse(line)
  try {
    const result = await call(device, method, args ?? [])
    process.stdout.write(JSON.stringify({ ok: result ?? null }) + '\n')
  } catch (e) {
    process.stdout.write(JSON.stringify({ error: String(e) }) + '\n')
  }
}
await browser.close()
await nodeClient.close()
