/**
 * The `Store` for browsers: one IndexedDB database per account, with object stores
 * `meta` (device, tokens, cursor, clock), `outbox`, `sent`, `notePacks` (the notes, many
 * to a record: see `PACKS`), `projects`, `settings`, `documents` (each note's Yjs state,
 * apart so that listing notes never reads them, or packs of states: see `PACK_MIN`),
 * `rejections` and `notifications`.
 *
 * Every method is one transaction whose requests are all issued from callbacks, with
 * no await inside it (IndexedDB commits a transaction as soon as it has nothing left
 * to do). `exclusive` holds a Web Lock named after the database, so writers in
 * several tabs of one app take turns.
 *
 * A newer version of the app opened in another tab upgrades the database, which it can
 * do only once every tab has closed it: a store closes its connection as soon as that
 * is asked of it (`versionchange`), tells `onVersionChange` listeners (the app should
 * reload: its code is older than the database's now), and fails every later call with
 * `StaleStore` (errors.ts). What it had committed is in the database, and the outbox goes out
 * from the new tab.
 */
import { StaleStore } from './errors.js'
import { Mutex } from './mutex.js'
import type { Changes, CommitOptions, Decide, EntityName, Event, NoteFilter, Op, Rejection, Row, RowKey, Sent, Store } from './types.js'

const VERSION = 3
/** Past this many ids, `rows` reads the whole table once instead of one get per id. */
const BULK = 200
/**
 * The notes live in this many records of `notePacks`, a note in the one numbered
 * `packOf(id)`: a put costs IndexedDB about the same whatever the record's size, and it
 * has no batch put, so writing every note (a bootstrap, a pulled batch renaming them all)
 * costs at most this many puts instead of one per note. The trade-off: a local edit
 * rewrites its note's whole pack (about 40 notes at 10,000), and more packs would make
 * that cheaper and bulk writes dearer. The pack follows from the id alone, with no
 * directory, so tabs never disagree about where a note is. Changing this (or `packOf`)
 * moves notes: it needs a new VERSION that repacks them.
 */
const PACKS = 256
/** Past this many packs, `rows` reads every pack in one getAll instead of one get each. */
const PACKS_BULK = 64
const TABLE: Record<'project' | 'settings', 'projects' | 'settings'> = { project: 'projects', settings: 'settings' }
/**
 * A commit bringing at least this many new notes with a document state (a bootstrap, a
 * large pull of shared notes) keeps their states in packs, each one record of the
 * `documents` store under an array key (never equal to a note id, a string), of up to
 * `PACK_BYTES`: one put for hundreds of notes instead of one each (a put of a small
 * state costs IndexedDB about as much as the note's own record). The note's record
 * names its pack. A state leaves its pack when it is next written (it is then kept on
 * its own) and the pack keeps a stale copy: one per note written new in bulk, which
 * `wipe` clears. Packs are not rewritten to drop such copies: that would cost the
 * bulk writes they save.
 */
const PACK_MIN = 32
const PACK_BYTES = 256 * 1024
/** A larger state is kept on its own: reading one note never reads a large pack. */
const PACK_STATE_MAX = 16 * 1024
const ALL = ['meta', 'outbox', 'sent', 'notePacks', 'projects', 'settings', 'documents', 'rejections', 'notifications']

/** A row as kept (in `notePacks`, `projects` or `settings`): the row's parts, the state apart. */
interface Record_ {
  id: string
  fields: Row['fields']
  clocks: Row['clocks']
  body: string
  derived: Row['derived']
  /** the key (`[pack]` in `documents`) of the pack holding the note's state */
  pack?: string
}

/** One record of `notePacks`: the notes whose ids hash to its number. */
interface NotePack { rows: Record<string, Record_> }

/** The `notePacks` record of note `id`: FNV-1a of its UTF-16 code units, mod `PACKS`. */
function packOf (id: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193)
  return (h >>> 0) % PACKS
}

/** `items` grouped by the pack each belongs to (`idOf`: its note's id). */
function byPack<T> (items: readonly T[], idOf: (item: T) => string): Map<number, T[]> {
  const out = new Map<number, T[]>()
  for (const item of items) {
    const k = packOf(idOf(item))
    const list = out.get(k)
    if (list === undefined) out.set(k, [item])
    else list.push(item)
  }
  return out
}

/** States of notes written together, by note id. */
interface Pack { ids: string[], states: Uint8Array[] }

function toRecord (row: Row, pack: string | undefined): Record_ {
  const r: Record_ = { id: row.id, fields: row.fields, clocks: row.clocks, body: row.body, derived: row.derived }
  if (pack !== undefined) r.pack = pack
  return r
}

function toRow (entity: EntityName, r: Record_, state: Uint8Array | null): Row {
  return { entity, id: r.id, fields: r.fields, clocks: r.clocks, body: r.body, bodyState: state, derived: r.derived, stateRef: r.pack ?? null }
}

/** Positions in packs read: reading many notes of one pack looks each up once. */
const positions = new WeakMap<Pack, Map<string, number>>()

/** A note's state from its pack (undefined: the pack is gone, which a write never does). */
function fromPack (pack: Pack | undefined, id: string): Uint8Array | null {
  if (pack === undefined) return null
  let at = positions.get(pack)
  if (at === undefined) {
    at = new Map(pack.ids.map((k, i) => [k, i]))
    positions.set(pack, at)
  }
  const i = at.get(id)
  return i === undefined ? null : pack.states[i] ?? null
}

/** Group the new notes' states into packs when there are many; return each note's pack. */
function packStates (t: IDBTransaction, rows: readonly Row[]): Map<Row, string> {
  const fresh = rows.filter((r) => r.entity === 'note' && r.stateRef === undefined && r.bodyState !== null &&
    r.bodyState.length <= PACK_STATE_MAX)
  const out = new Map<Row, string>()
  if (fresh.length < PACK_MIN) return out
  // unique without a read: other tabs write packs too
  const prefix = `${Date.now().toString(36)}.${Math.random().toString(36).slice(2, 10)}.`
  let pack: Pack = { ids: [], states: [] }
  let n = 0
  let bytes = 0
  const put = (): void => {
    if (pack.ids.length > 0) t.objectStore('documents').put(pack, [prefix + String(n++)])
  }
  for (const row of fresh) {
    const state = row.bodyState as Uint8Array
    if (bytes + state.length > PACK_BYTES) {
      put()
      pack = { ids: [], states: [] }
      bytes = 0
    }
    pack.ids.push(row.id)
    pack.states.push(state)
    bytes += state.length
    out.set(row, prefix + String(n))
  }
  put()
  return out
}

/**
 * Create what versions after `from` added (0: a new database), within the versionchange
 * transaction `t`.
 */
function upgrade (db: IDBDatabase, t: IDBTransaction, from: number): void {
  if (from < 1) createV1(db)
  if (from < 2) db.createObjectStore('settings', { keyPath: 'id' })
  if (from < 3) {
    const packs = db.createObjectStore('notePacks')
    if (from >= 1) repack(db, t, packs)
  }
}

/**
 * The stores of version 1, but for `notes` (one record per note, with indexes on
 * project, tags, pinned and deleted), which version 3 replaced by `notePacks`.
 */
function createV1 (db: IDBDatabase): void {
  db.createObjectStore('meta')
  db.createObjectStore('outbox', { keyPath: 'client_seq' })
  db.createObjectStore('sent', { keyPath: 'client_seq' })
  db.createObjectStore('projects', { keyPath: 'id' })
  db.createObjectStore('documents')
  db.createObjectStore('rejections', { keyPath: 'client_seq' })
  db.createObjectStore('notifications', { keyPath: 'seq' }).createIndex('kind', 'kind')
}

/**
 * Move the notes of a version 1 or 2 database into packs, then drop their store and its
 * indexes. One read of them all: every note must be in memory anyway before its pack can
 * be written once.
 */
function repack (db: IDBDatabase, t: IDBTransaction, packs: IDBObjectStore): void {
  const all = t.objectStore('notes').getAll()
  all.onsuccess = () => {
    for (const [k, olds] of byPack(all.result as Record_[], (r) => r.id)) {
      const pack: NotePack = { rows: {} }
      // the index columns of the old layout are left behind
      for (const old of olds) pack.rows[old.id] = { id: old.id, fields: old.fields, clocks: old.clocks, body: old.body, derived: old.derived, ...(old.pack === undefined ? {} : { pack: old.pack }) }
      packs.put(pack, k)
    }
    db.deleteObjectStore('notes')
  }
}

/**
 * Write note rows, then drop notes: each pack touched is read once, changed and put back
 * (all its gets issued first, each put from its get's callback; requests on one store
 * run in order, so a later read in this transaction sees the puts).
 */
function writeNotes (t: IDBTransaction, rows: readonly Row[], drops: readonly string[], packed: Map<Row, string>,
  read: ReadonlyMap<number, NotePack | undefined>): void {
  const documents = t.objectStore('documents')
  for (const row of rows) if (!packed.has(row) && row.bodyState !== null) documents.put(row.bodyState, row.id)
  for (const id of drops) documents.delete(id)
  // rows first, then drops, within each pack
  const touched = byPack<Row | string>([...rows, ...drops], (c) => typeof c === 'string' ? c : c.id)
  const store = t.objectStore('notePacks')
  const change = (k: number, changes: Array<Row | string>, stored: NotePack | undefined): void => {
    const pack = stored ?? { rows: {} }
    for (const c of changes) {
      if (typeof c === 'string') {
        delete pack.rows[c]
        continue
      }
      // where the state is: a new pack of states, its own record, where the store
      // said when the row was read without it (a query), or else where the stored
      // record says (a row not read from here)
      const ref = packed.get(c) ?? (c.bodyState !== null
        ? undefined
        : c.stateRef !== undefined ? c.stateRef ?? undefined : pack.rows[c.id]?.pack)
      pack.rows[c.id] = toRecord(c, ref)
    }
    if (Object.keys(pack.rows).length === 0) store.delete(k)
    else store.put(pack, k)
  }
  for (const [k, changes] of touched) {
    // a pack this transaction read already (a local edit's) is not read again
    if (read.has(k)) {
      change(k, changes, read.get(k))
      continue
    }
    const g = store.get(k)
    g.onsuccess = () => { change(k, changes, g.result as NotePack | undefined) }
  }
}

/** Apply `c` within the readwrite transaction `t` over every store. */
function write (t: IDBTransaction, c: Changes, out: { value: number[] },
  read: ReadonlyMap<number, NotePack | undefined> = new Map()): void {
  const meta = t.objectStore('meta')
  for (const [key, value] of Object.entries(c.meta ?? {})) {
    if (value === null) meta.delete(key)
    else meta.put(String(value), key)
  }
  const rows = c.rows ?? []
  const notes: Row[] = []
  for (const row of rows) {
    if (row.entity === 'note') notes.push(row)
    else t.objectStore(TABLE[row.entity]).put(toRecord(row, undefined))
  }
  const drops: string[] = []
  for (const d of c.drop ?? []) {
    if (d.entity === 'note') drops.push(d.id)
    else t.objectStore(TABLE[d.entity]).delete(d.id)
  }
  if (notes.length > 0 || drops.length > 0) writeNotes(t, notes, drops, packStates(t, notes), read)
  const outbox = t.objectStore('outbox')
  // consumed ops leave before new ones are numbered (a new device numbers from 1 again)
  for (const s of c.dropOps ?? []) outbox.delete(s)
  if (c.dropOpsBelow !== undefined && c.dropOpsBelow > 0) outbox.delete(IDBKeyRange.upperBound(c.dropOpsBelow, true))
  const ops = c.enqueue ?? []
  if (ops.length > 0) {
    // requests run in order, so this read sees the meta writes above
    const r = meta.get('next_seq')
    r.onsuccess = () => {
      let next = Number(r.result ?? 1)
      for (const op of ops) {
        outbox.put({ ...op, client_seq: next })
        out.value.push(next++)
      }
      meta.put(String(next), 'next_seq')
    }
  }
  const sent = t.objectStore('sent')
  for (const s of c.sent ?? []) sent.put(s)
  for (const s of c.unsent ?? []) sent.delete(s)
  if (c.unsentFrom !== undefined) sent.delete(IDBKeyRange.lowerBound(c.unsentFrom))
  for (const r of c.rejections ?? []) t.objectStore('rejections').put(r)
  for (const n of c.notifications ?? []) t.objectStore('notifications').put(n)
}

/** Read the records of `ids` (all when omitted) from `table`, one per row, calling `add` on each. */
function readRecords (table: IDBObjectStore, ids: readonly string[] | undefined, add: (r: Record_) => void): void {
  if (ids === undefined || ids.length > BULK) {
    // one getAll is far cheaper than thousands of gets
    const wanted = ids === undefined ? null : new Set(ids)
    const all = table.getAll()
    all.onsuccess = () => { for (const r of all.result as Record_[]) if (wanted === null || wanted.has(r.id)) add(r) }
    return
  }
  for (const id of ids) {
    const g = table.get(id)
    g.onsuccess = () => { if (g.result !== undefined) add(g.result as Record_) }
  }
}

/** Read the notes `ids` (all when omitted): each pack holding one once, calling `add` on each. */
function readNotes (t: IDBTransaction, ids: readonly string[] | undefined, add: (r: Record_) => void): void {
  const store = t.objectStore('notePacks')
  const packs = byPack(ids ?? [], (id) => id)
  if (ids === undefined || packs.size > PACKS_BULK) {
    const wanted = ids === undefined ? null : new Set(ids)
    const all = store.getAll()
    all.onsuccess = () => {
      for (const pack of all.result as NotePack[]) {
        for (const r of Object.values(pack.rows)) if (wanted === null || wanted.has(r.id)) add(r)
      }
    }
    return
  }
  for (const [k, list] of packs) {
    const g = store.get(k)
    g.onsuccess = () => {
      const pack = g.result as NotePack | undefined
      if (pack === undefined) return
      for (const id of list) {
        const r = pack.rows[id]
        if (r !== undefined) add(r)
      }
    }
  }
}

export class IndexedDbStore implements Store {
  private readonly mutex = new Mutex()
  private readonly staleListeners = new Set<() => void>()
  /** Closed for a newer version (see the module's doc). */
  stale = false

  constructor (private readonly db: IDBDatabase, readonly name: string) {
    db.onversionchange = () => {
      db.close()
      this.stale = true
      for (const fn of this.staleListeners) fn()
    }
  }

  /** Call `fn` when another tab upgrades the database (this store is closed by then);
   * returns a function that stops it. */
  onVersionChange (fn: () => void): () => void {
    this.staleListeners.add(fn)
    return () => { this.staleListeners.delete(fn) }
  }

  /** Run `fn` in one transaction; resolve with what it leaves in `out` once committed. */
  private async run<T> (stores: string[], mode: IDBTransactionMode,
    fn: (t: IDBTransaction, out: { value: T }) => void, initial: T,
    durability: IDBTransactionDurability = 'strict'): Promise<T> {
    if (this.stale) throw new StaleStore(`database ${this.name} was upgraded by a newer version of the app in another tab: reload`)
    return await new Promise<T>((resolve, reject) => {
      const t = this.db.transaction(stores, mode, { durability })
      const out = { value: initial }
      t.oncomplete = () => resolve(out.value)
      t.onerror = () => reject(t.error)
      t.onabort = () => reject(t.error ?? new Error('transaction aborted'))
      try {
        fn(t, out)
      } catch (e) {
        t.abort()
        reject(e)
      }
    })
  }

  async exclusive<T> (fn: () => Promise<T>): Promise<T> {
    const locks = (globalThis.navigator as Navigator | undefined)?.locks
    if (locks === undefined) return await this.mutex.run(fn)
    return await locks.request(`syncd-store:${this.name}`, fn) as T
  }

  async getMeta (key: string): Promise<string | undefined> {
    return await this.run<string | undefined>(['meta'], 'readonly', (t, out) => {
      const r = t.objectStore('meta').get(key)
      r.onsuccess = () => { out.value = r.result as string | undefined }
    }, undefined)
  }

  async getMetas (keys: string[]): Promise<Record<string, string | undefined>> {
    return await this.run<Record<string, string | undefined>>(['meta'], 'readonly', (t, out) => {
      for (const key of keys) {
        const r = t.objectStore('meta').get(key)
        r.onsuccess = () => { out.value[key] = r.result as string | undefined }
      }
    }, {})
  }

  async row (entity: EntityName, id: string): Promise<Row | undefined> {
    const [row] = await this.rows(entity, [id])
    return row
  }

  async rows (entity: EntityName, ids?: readonly string[], withState = true): Promise<Row[]> {
    const state = withState && entity === 'note'
    const stores = entity !== 'note' ? [TABLE[entity]] : state ? ['notePacks', 'documents'] : ['notePacks']
    const found = await this.run<Row[]>(stores, 'readonly', (t, out) => {
      const pending = new Map<string, IDBRequest>()
      const add = (r: Record_): void => {
        const row = toRow(entity, r, null)
        out.value.push(row)
        if (!state) return
        if (r.pack === undefined) {
          const d = t.objectStore('documents').get(r.id)
          d.onsuccess = () => { row.bodyState = (d.result as Uint8Array | undefined) ?? null }
          return
        }
        // one read of each pack, however many of its notes are asked for
        let p = pending.get(r.pack)
        if (p === undefined) {
          p = t.objectStore('documents').get([r.pack])
          pending.set(r.pack, p)
        }
        const request = p
        request.addEventListener('success', () => { row.bodyState = fromPack(request.result as Pack | undefined, r.id) })
      }
      if (entity === 'note') readNotes(t, ids, add)
      else readRecords(t.objectStore(TABLE[entity]), ids, add)
    }, [])
    if (ids === undefined) return found
    // in the order asked for, as a store of one record per row gives them
    const at = new Map(ids.map((id, i) => [id, i]))
    return found.sort((a, b) => (at.get(a.id) ?? 0) - (at.get(b.id) ?? 0))
  }

  /**
   * Rows without their document state (`bodyState` null): a list never needs it. Every
   * pack is read and filtered here: the notes have no indexes, as reading ~`PACKS`
   * records and filtering costs less than the index entries every write of a pack
   * would rewrite (and a query is read, a pack written, once for many notes).
   */
  async queryNotes (filter: NoteFilter): Promise<Row[]> {
    const deleted = filter.deleted === undefined ? false : filter.deleted
    return await this.run<Row[]>(['notePacks'], 'readonly', (t, out) => {
      const request = t.objectStore('notePacks').getAll()
      request.onsuccess = () => {
        for (const pack of request.result as NotePack[]) {
          for (const r of Object.values(pack.rows)) {
            const f = r.fields
            if (deleted !== null && (f.deleted === true) !== deleted) continue
            if (filter.pinned !== undefined && (f.pinned === true) !== filter.pinned) continue
            if (filter.projectId !== undefined &&
              (typeof f.project_id === 'string' ? f.project_id : '') !== (filter.projectId ?? '')) continue
            if (filter.tag !== undefined && !(Array.isArray(f.tags) && f.tags.includes(filter.tag))) continue
            out.value.push(toRow('note', r, null))
          }
        }
      }
    }, [])
  }

  async pending (limit: number, after = 0): Promise<Op[]> {
    return await this.run<Op[]>(['outbox'], 'readonly', (t, out) => {
      // getAll's count is an unsigned long: a larger limit means all
      const range = after > 0 ? IDBKeyRange.lowerBound(after, true) : null
      const r = t.objectStore('outbox').getAll(range, limit >= 2 ** 32 ? undefined : limit)
      r.onsuccess = () => { out.value = r.result as Op[] }
    }, [])
  }

  async outboxSize (): Promise<number> {
    return await this.run<number>(['outbox'], 'readonly', (t, out) => {
      const r = t.objectStore('outbox').count()
      r.onsuccess = () => { out.value = r.result }
    }, 0)
  }

  async sent (seqs: number[]): Promise<Sent[]> {
    return await this.run<Sent[]>(['sent', 'outbox'], 'readonly', (t, out) => {
      for (const s of seqs) {
        const r = t.objectStore('sent').get(s)
        r.onsuccess = () => {
          if (r.result !== undefined) {
            out.value.push(r.result as Sent)
            return
          }
          const q = t.objectStore('outbox').get(s)
          q.onsuccess = () => {
            const op = q.result as Op | undefined
            if (op !== undefined) out.value.push({ client_seq: s, entity: op.entity, id: op.id, hlc: op.hlc })
          }
        }
      }
    }, [])
  }

  async rejections (): Promise<Rejection[]> {
    return await this.run<Rejection[]>(['rejections'], 'readonly', (t, out) => {
      const r = t.objectStore('rejections').getAll()
      r.onsuccess = () => { out.value = r.result as Rejection[] }
    }, [])
  }

  async notifications (kind?: string): Promise<Event[]> {
    return await this.run<Event[]>(['notifications'], 'readonly', (t, out) => {
      const s = t.objectStore('notifications')
      const r = kind === undefined ? s.getAll() : s.index('kind').getAll(kind)
      r.onsuccess = () => { out.value = (r.result as Event[]).sort((a, b) => a.seq - b.seq) }
    }, [])
  }

  async commit (c: Changes, options: CommitOptions = {}): Promise<number[]> {
    // 'relaxed': complete once written to the operating system, not yet flushed to the
    // disk; the next strict commit flushes the same log, this one included
    return await this.run<number[]>(ALL, 'readwrite', (t, out) => { write(t, c, out) }, [],
      options.durable === false ? 'relaxed' : 'strict')
  }

  /** Notes by pack (the other rows first): a chunk then rewrites only the packs it fills. */
  bulkOrder (rows: readonly Row[]): Row[] {
    return rows.map((row) => ({ row, k: row.entity === 'note' ? packOf(row.id) : -1 }))
      .sort((a, b) => a.k - b.k).map((x) => x.row)
  }

  async update (metaKeys: string[], first: RowKey[], decide: Decide): Promise<number[]> {
    let failure: unknown
    try {
      return await this.run<number[]>(ALL, 'readwrite', (t, out) => {
        const rows = new Map<string, Row | undefined>()
        const packs = new Map<number, IDBRequest>()
        // the packs read so far, by number (undefined: none yet), for the write
        const packsRead = new Map<number, NotePack | undefined>()
        const meta: Record<string, string | undefined> = {}
        let waiting = 0
        const settle = (): void => {
          if (waiting > 0) return
          try {
            const d = decide(rows, meta)
            if ('changes' in d) write(t, d.changes, out, packsRead)
            else if (!read(d.read)) throw new Error('update: the rows asked for are read already')
          } catch (e) {
            // thrown from a request's callback, it would abort with a bare AbortError
            failure = e
            t.abort()
          }
        }
        const read = (keys: RowKey[]): boolean => {
          const fresh = keys.filter((k) => !rows.has(`${k.entity}:${k.id}`))
          for (const { entity, id } of fresh) {
            const key = `${entity}:${id}`
            rows.set(key, undefined)
            waiting++
            const got = (r: Record_ | undefined): void => {
              if (r !== undefined) rows.set(key, toRow(entity, r, null))
              waiting--
              settle()
            }
            if (entity !== 'note') {
              const g = t.objectStore(TABLE[entity]).get(id)
              g.onsuccess = () => { got(g.result as Record_ | undefined) }
              continue
            }
            const k = packOf(id)
            let p = packs.get(k)
            if (p === undefined) {
              p = t.objectStore('notePacks').get(k)
              packs.set(k, p)
            }
            const request = p
            request.addEventListener('success', () => {
              const pack = request.result as NotePack | undefined
              packsRead.set(k, pack)
              // the row gets its own maps: the pack is written as read, so a change
              // `decide` makes to a row it does not write must not reach it
              const r = pack?.rows[id]
              got(r === undefined ? undefined : { ...r, fields: { ...r.fields }, clocks: { ...r.clocks }, derived: { ...r.derived } })
            })
          }
          return fresh.length > 0
        }
        for (const key of metaKeys) {
          waiting++
          const r = t.objectStore('meta').get(key)
          r.onsuccess = () => {
            meta[key] = r.result as string | undefined
            waiting--
            settle()
          }
        }
        read(first)
        settle()
      }, [])
    } catch (e) {
      throw failure ?? e
    }
  }

  async renumber (first: number): Promise<void> {
    await this.run<undefined>(['outbox', 'meta'], 'readwrite', (t) => {
      const outbox = t.objectStore('outbox')
      const r = outbox.getAll()
      r.onsuccess = () => {
        const ops = r.result as Op[]
        outbox.clear()
        ops.forEach((op, i) => outbox.put({ ...op, client_seq: first + i }))
        t.objectStore('meta').put(String(first + ops.length), 'next_seq')
      }
    }, undefined)
  }

  async wipe (): Promise<void> {
    await this.run<undefined>(ALL, 'readwrite', (t) => {
      for (const s of ALL) if (s !== 'meta') t.objectStore(s).clear()
    }, undefined)
  }

  async close (): Promise<void> {
    this.db.close()
  }
}

export interface OpenOptions {
  factory?: IDBFactory
  /**
   * Called when the upgrade waits for another tab that keeps the database open (a tab
   * of an app from before stores closed for newer versions): the open goes on once that
   * tab closes, and the app may ask the user to close it meanwhile.
   */
  onBlocked?: () => void
}

/** Open (or create) the account's database `name`. */
export async function openIndexedDbStore (name: string, options: OpenOptions = {}): Promise<IndexedDbStore> {
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const r = (options.factory ?? indexedDB).open(name, VERSION)
    r.onupgradeneeded = (e) => upgrade(r.result, r.transaction as IDBTransaction, e.oldVersion)
    r.onsuccess = () => resolve(r.result)
    r.onerror = () => reject(r.error)
    r.onblocked = () => options.onBlocked?.()
  })
  return new IndexedDbStore(db, name)
}
