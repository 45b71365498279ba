// The store suite against the SQLite store, each case on a fresh file.
import { test } from 'node:test'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openSqliteStore } from '../../dist/sqlite-store.js'
import { cases } from '../store-suite.mjs'

const dir = mkdtempSync(join(tmpdir(), 'syncd-store-'))
let n = 0
for (const [name, run] of Object.entries(cases)) {
  test(`sqlite: ${name}`, async () => {
    const store = openSqliteStore(join(dir, `store-${n++}.db`))
    try {
      await run(store)
    } finally {
      await store.close()
    }
  })
}
