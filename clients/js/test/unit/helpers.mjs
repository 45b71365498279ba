// A SyncClient on a throwaway SQLite store, signed in as a made-up device: what a
// device does on its own, with no server (the URL is never called).
import { SyncClient, formatHlc } from '../../dist/index.js'
import { openSqliteStore } from '../../dist/sqlite-store.js'

export const DEVICE = '0f000000-0000-4000-8000-00000000000d'
export const OTHER = '0f000000-0000-4000-8000-00000000000e'
export const USER = '0f000000-0000-4000-8000-0000000000aa'
export const NOTE = '11111111-1111-4111-8111-111111111111'

export async function offlineClient (path = ':memory:') {
  const store = openSqliteStore(path)
  if (await store.getMeta('device_id') === undefined) {
    await store.commit({ meta: { device_id: DEVICE, user_id: USER } })
  }
  return await SyncClient.open(store, { url: 'http://127.0.0.1:9' })
}

export function h (wall, node = OTHER, counter = 0) {
  return formatHlc(wall, counter, node)
}

export function ev (seq, kind, hlc, extra = {}) {
  return {
    seq, entity: 'note', id: NOTE, kind, hlc, device_id: OTHER, user_id: USER,
    at: '2026-11-21T10:00:00Z', ...extra
  }
}
