/**
 * Remote state into the local store: a batch of pulled events, or a snapshot. Each runs
 * inside the store's exclusive lock (the caller takes it). Rows are written in chunks
 * (IndexedDB slows down more than linearly within one large transaction: 10,000 notes
 * took 8.0 s in one and 3.6 s in ten) and the cursor moves with the last chunk, so a
 * crash in between only means the same events are applied again, which changes nothing.
 */
import type { Clock } from './hlc.js'
import type { Snapshot } from './api.js'
import { NOTIFICATION_KINDS, applyEntity, applyEvent, applyMember, entityName, type DocLookup } from './projection.js'
import { type Changes, type EntityName, type Event, type Row, type Sent, type Store, newRow } from './types.js'

const CHUNK = 1000

/**
 * Write `rows` in chunks, the last one together with `final` (the cursor).
 *
 * The chunks before the last are all handed to the store at once, not durable: the
 * store builds one while it writes the one before, and none waits for the disk. This
 * stays crash-safe because the cursor moves only in the last commit, which is durable,
 * is called only once every chunk before it succeeded, and is applied after them (the
 * store keeps the order of commits). A crash before it reaches the disk loses at most
 * chunks whose events are then applied again from the old cursor; once it is on the
 * disk, so is every chunk written before it (one log, flushed in order).
 */
async function commitInChunks (store: Store, unordered: Row[], final: Changes): Promise<void> {
  const rows = store.bulkOrder?.(unordered) ?? unordered
  const chunks: Array<Promise<number[]>> = []
  let start = 0
  for (; rows.length - start > CHUNK; start += CHUNK) {
    chunks.push(store.commit({ rows: rows.slice(start, start + CHUNK) }, { durable: false }))
  }
  // every chunk settles before the lock is let go; the first failure is thrown
  for (const r of await Promise.allSettled(chunks)) if (r.status === 'rejected') throw r.reason
  await store.commit({ ...final, rows: rows.slice(start) })
}

export interface ApplyContext {
  store: Store
  clock: Clock
  deviceId: string | undefined
  /** the open documents: text merges go through them so editors see them */
  docs: DocLookup
  closeDoc: (id: string) => void
}

/** Apply events in log order, skipping those at or below the cursor; return changed ids. */
export async function applyBatch (ctx: ApplyContext, events: Event[]): Promise<string[]> {
  let cursor = Number(await ctx.store.getMeta('cursor') ?? 0)
  const fresh = events.filter((e) => e.seq > cursor)
  if (fresh.length === 0) return []
  const deviceId = ctx.deviceId
  const ids: Record<EntityName, Set<string>> = { note: new Set(), project: new Set(), settings: new Set() }
  const texts = new Set<string>() // notes whose document the events touch
  const own: number[] = []
  for (const e of fresh) {
    const entity = entityName(e.entity)
    if (entity !== null) ids[entity].add(e.id)
    if (entity === 'note' && (e.kind === 'text' || e.kind === 'put')) texts.add(e.id)
    if (e.client_seq != null && e.device_id === deviceId) own.push(e.client_seq)
  }
  const rows = new Map<string, Row>()
  // documents are read only for the notes whose text changes (a row saved without
  // its document leaves the stored one as it is)
  const fieldsOnly = [...ids.note].filter((id) => !texts.has(id))
  for (const [entity, list, withState] of [['note', [...texts], true], ['note', fieldsOnly, false],
    ['project', [...ids.project], false], ['settings', [...ids.settings], false]] as const) {
    if (list.length === 0) continue
    for (const r of await ctx.store.rows(entity, list, withState)) rows.set(`${entity}:${r.id}`, r)
  }
  const sent = new Map<number, Sent>((await ctx.store.sent(own)).map((s) => [s.client_seq, s]))
  const touched = new Map<string, Row>()
  const drop: Array<{ entity: EntityName, id: string }> = []
  const notifications: Event[] = []
  const out: string[] = []
    for (const e of fresh) {
    cursor = e.seq
    if (e.hlc) ctx.clock.observe(e.hlc)
    const entity = entityName(e.entity)
    const key = `${entity}:${e.id}`
    if (NOTIFICATION_KINDS.has(e.kind)) {
      notifications.push(e)
      out.push(e.id)
      const project = rows.get(key)
      if (e.kind === 'member' && project !== undefined && applyMember(project, e)) touched.set(key, project)
      continue
    }
    if (entity === null) continue
    if (e.kind === 'revoke') {
      if (rows.delete(key) || touched.delete(key)) out.push(e.id)
      drop.push({ entity, id: e.id })
      ctx.closeDoc(e.id)
      continue
    }
    const row = rows.get(key) ?? newRow(entity, e.id)
    rows.set(key, row)
    const mine = e.client_seq != null && e.device_id === deviceId ? sent.get(e.client_seq) : undefined
    if (applyEvent(row, e, mine?.hlc, ctx.docs)) out.push(e.id)
    touched.set(key, row)
  }
  // our own events say the server consumed those ops (a lost push response): they
  // and every op below them leave the outbox, so they are not pushed again
  const ownMax = Math.max(0, ...fresh.filter((e) => e.client_seq != null && e.device_id === deviceId).map((e) => e.client_seq as number))
  const acked = Math.max(ownMax, Number(await ctx.store.getMeta('acked') ?? 0))
  await commitInChunks(ctx.store, [...touched.values()], {
    drop: drop.filter((d) => !touched.has(`${d.entity}:${d.id}`)),
    notifications,
    unsent: [...sent.keys()],
    ...(ownMax > 0 ? { dropOpsBelow: ownMax + 1 } : {}),
    meta: { cursor, last_hlc: ctx.clock.last, acked }
  })
  return [...new Set(out)]
}

/** Merge a snapshot into the store field by field; return the ids that changed. */
export async function loadSnapshot (ctx: ApplyContext, snap: Snapshot): Promise<string[]> {
  const out: string[] = []
  const rows: Row[] = []
  const settings = snap.settings === undefined || snap.settings === null ? [] : [snap.settings]
  for (const [entity, items] of [['project', snap.projects], ['note', snap.notes], ['settings', settings]] as const) {
    const existing = new Map((await ctx.store.rows(entity, items.map((f) => String(f.id)))).map((r) => [r.id, r]))
    for (const flat of items) {
      for (const c of Object.values((flat.clocks ?? {}) as Record<string, string>)) ctx.clock.observe(c)
      const id = String(flat.id)
      const row = existing.get(id) ?? newRow(entity, id)
      if (applyEntity(row, flat, ctx.docs)) out.push(id)
      rows.push(row)
    }
  }
  const cursor = Number(await ctx.store.getMeta('cursor') ?? 0)
  await commitInChunks(ctx.store, rows, { meta: { cursor: Math.max(cursor, snap.cursor), last_hlc: ctx.clock.last } })
  return out
}
