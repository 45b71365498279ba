/**
 * The `Store` for Node and Electron: one SQLite file through better-sqlite3 (WAL mode).
 *
 * better-sqlite3 is synchronous, so every method is one short transaction that no other
 * call can interleave with; `exclusive` is an in-process lock (one process owns a file).
 */
import Database from 'better-sqlite3'
import { Mutex } from './mutex.js'
import type { Changes, Decide, EntityName, Event, NoteFilter, Op, Rejection, Row, RowKey, Sent, Store } from './types.js'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (client_seq INTEGER PRIMARY KEY, op TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sent (client_seq INTEGER PRIMARY KEY, entity TEXT NOT NULL,
  id TEXT NOT NULL, hlc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notes (id TEXT PRIMARY KEY, fields TEXT NOT NULL, clocks TEXT NOT NULL,
  deleted INTEGER NOT NULL, project_id TEXT, pinned INTEGER NOT NULL, body TEXT NOT NULL,
  body_state BLOB, derived TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS notes_project ON notes (project_id);
CREATE TABLE IF NOT EXISTS projects (id TEXT PRIMARY KEY, fields TEXT NOT NULL, clocks TEXT NOT NULL,
  deleted INTEGER NOT NULL, project_id TEXT, pinned INTEGER NOT NULL, body TEXT NOT NULL,
  body_state BLOB, derived TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS settings (id TEXT PRIMARY KEY, fields TEXT NOT NULL, clocks TEXT NOT NULL,
  deleted INTEGER NOT NULL, project_id TEXT, pinned INTEGER NOT NULL, body TEXT NOT NULL,
  body_state BLOB, derived TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rejections (client_seq INTEGER PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notifications (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL);
`

const TABLE: Record<EntityName, string> = { note: 'notes', project: 'projects', settings: 'settings' }

interface RowRecord {
  id: string
  fields: string
  clocks: string
  body: string
  body_state: Uint8Array | null
  derived: string
}

function toRow (entity: EntityName, r: RowRecord): Row {
  return {
    entity,
    id: r.id,
    fields: JSON.parse(r.fields),
    clocks: JSON.parse(r.clocks),
    body: r.body,
    bodyState: r.body_state === null ? null : new Uint8Array(r.body_state),
    derived: JSON.parse(r.derived)
  }
}

export class SqliteStore implements Store {
  private readonly db: Database.Database
  private readonly mutex = new Mutex()

  constructor (readonly path: string, readonly name = path) {
    this.db = new Database(path)
    this.db.pragma('journal_mode = WAL')
    this.db.pragma('synchronous = NORMAL')
    this.db.exec(SCHEMA)
  }

  async exclusive<T> (fn: () => Promise<T>): Promise<T> {
    return await this.mutex.run(fn)
  }

  async getMeta (key: string): Promise<string | undefined> {
    const r = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined
    return r?.value
  }

  async getMetas (keys: string[]): Promise<Record<string, string | undefined>> {
    const get = this.db.prepare('SELECT value FROM meta WHERE key = ?')
    return Object.fromEntries(keys.map((k) => [k, (get.get(k) as { value: string } | undefined)?.value]))
  }

  async row (entity: EntityName, id: string): Promise<Row | undefined> {
    const r = this.db.prepare(`SELECT * FROM ${TABLE[entity]} WHERE id = ?`).get(id) as RowRecord | undefined
    return r === undefined ? undefined : toRow(entity, r)
  }

  async rows (entity: EntityName, ids?: readonly string[], withState = true): Promise<Row[]> {
    const columns = withState ? '*' : 'id, fields, clocks, body, NULL AS body_state, derived'
    if (ids === undefined) {
      return (this.db.prepare(`SELECT ${columns} FROM ${TABLE[entity]}`).all() as RowRecord[]).map((r) => toRow(entity, r))
    }
    const out: Row[] = []
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500)
      const sql = `SELECT ${columns} FROM ${TABLE[entity]} WHERE id IN (${chunk.map(() => '?').join(',')})`
      for (const r of this.db.prepare(sql).all(...chunk) as RowRecord[]) out.push(toRow(entity, r))
    }
    return out
  }

  async queryNotes (filter: NoteFilter): Promise<Row[]> {
    const where: string[] = []
    const args: unknown[] = []
    const deleted = filter.deleted === undefined ? false : filter.deleted
    if (deleted !== null) { where.push('deleted = ?'); args.push(deleted ? 1 : 0) }
    if (filter.projectId !== undefined) {
      where.push(filter.projectId === null ? 'project_id IS NULL' : 'project_id = ?')
      if (filter.projectId !== null) args.push(filter.projectId)
    }
    if (filter.pinned !== undefined) { where.push('pinned = ?'); args.push(filter.pinned ? 1 : 0) }
    if (filter.tag !== undefined) {
      where.push("EXISTS (SELECT 1 FROM json_each(fields, '$.tags') WHERE json_each.value = ?)")
      args.push(filter.tag)
    }
    const sql = 'SELECT * FROM notes' + (where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '')
    return (this.db.prepare(sql).all(...args) as RowRecord[]).map((r) => toRow('note', r))
  }

  async pending (limit: number, after = 0): Promise<Op[]> {
    const rows = this.db.prepare('SELECT client_seq, op FROM outbox WHERE client_seq > ? ORDER BY client_seq LIMIT ?').all(after, limit) as Array<{ client_seq: number, op: string }>
    return rows.map((r) => ({ ...JSON.parse(r.op), client_seq: r.client_seq }))
  }

  async outboxSize (): Promise<number> {
    return (this.db.prepare('SELECT count(*) AS n FROM outbox').get() as { n: number }).n
  }

  async sent (seqs: number[]): Promise<Sent[]> {
    const sent = this.db.prepare('SELECT * FROM sent WHERE client_seq = ?')
    const queued = this.db.prepare('SELECT client_seq, op FROM outbox WHERE client_seq = ?')
    const out: Sent[] = []
    for (const seq of seqs) {
      const s = sent.get(seq) as Sent | undefined
      const q = s === undefined ? queued.get(seq) as { client_seq: number, op: string } | undefined : undefined
      if (s !== undefined) out.push(s)
      else if (q !== undefined) {
        const op = JSON.parse(q.op) as Op
        out.push({ client_seq: seq, entity: op.entity, id: op.id, hlc: op.hlc })
      }
    }
    return out
  }

  async rejections (): Promise<Rejection[]> {
    const rows = this.db.prepare('SELECT value FROM rejections ORDER BY client_seq').all() as Array<{ value: string }>
    return rows.map((r) => JSON.parse(r.value))
  }

  async notifications (kind?: string): Promise<Event[]> {
    const rows = (kind === undefined
      ? this.db.prepare('SELECT value FROM notifications ORDER BY seq').all()
      : this.db.prepare('SELECT value FROM notifications WHERE kind = ? ORDER BY seq').all(kind)) as Array<{ value: string }>
    return rows.map((r) => JSON.parse(r.value))
  }

  async commit (changes: Changes): Promise<number[]> {
    return this.db.transaction(() => this.apply(changes))()
  }

  async update (metaKeys: string[], first: RowKey[], decide: Decide): Promise<number[]> {
    return this.db.transaction(() => {
      const getMeta = this.db.prepare('SELECT value FROM meta WHERE key = ?')
      const meta = Object.fromEntries(metaKeys.map((k) => [k, (getMeta.get(k) as { value: string } | undefined)?.value]))
      const rows = new Map<string, Row | undefined>()
      let keys = first
      for (;;) {
        const fresh = keys.filter((k) => !rows.has(`${k.entity}:${k.id}`))
        if (keys !== first && fresh.length === 0) throw new Error('update: the rows asked for are read already')
        for (const { entity, id } of fresh) {
          const r = this.db.prepare(`SELECT id, fields, clocks, body, NULL AS body_state, derived FROM ${TABLE[entity]} WHERE id = ?`).get(id) as RowRecord | undefined
          rows.set(`${entity}:${id}`, r === undefined ? undefined : toRow(entity, r))
        }
        const d = decide(rows, meta)
        if ('changes' in d) return this.apply(d.changes)
        keys = d.read
      }
    })()
  }

  private apply (c: Changes): number[] {
    const db = this.db
    const setMeta = db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value')
    const delMeta = db.prepare('DELETE FROM meta WHERE key = ?')
    for (const [key, value] of Object.entries(c.meta ?? {})) {
      if (value === null) delMeta.run(key)
      else setMeta.run(key, String(value))
    }
    for (const row of c.rows ?? []) {
      // a row read without its document (a query) leaves the stored one as it is
      db.prepare(`INSERT INTO ${TABLE[row.entity]} (id, fields, clocks, deleted, project_id, pinned, body, body_state, derived) VALUES (?,?,?,?,?,?,?,?,?)
        ON CONFLICT (id) DO UPDATE SET fields = excluded.fields, clocks = excluded.clocks, deleted = excluded.deleted,
        project_id = excluded.project_id, pinned = excluded.pinned, body = excluded.body,
        body_state = coalesce(excluded.body_state, body_state), derived = excluded.derived`).run(
        row.id, JSON.stringify(row.fields), JSON.stringify(row.clocks), row.fields.deleted === true ? 1 : 0,
        typeof row.fields.project_id === 'string' ? row.fields.project_id : null,
        row.fields.pinned === true ? 1 : 0, row.body,
        row.bodyState === null ? null : Buffer.from(row.bodyState.buffer, row.bodyState.byteOffset, row.bodyState.byteLength),
        JSON.stringify(row.derived))
    }
    for (const d of c.drop ?? []) db.prepare(`DELETE FROM ${TABLE[d.entity]} WHERE id = ?`).run(d.id)
    // consumed ops leave before new ones are numbered (a new device numbers from 1 again)
    const dropOp = db.prepare('DELETE FROM outbox WHERE client_seq = ?')
    for (const s of c.dropOps ?? []) dropOp.run(s)
    if (c.dropOpsBelow !== undefined) db.prepare('DELETE FROM outbox WHERE client_seq < ?').run(c.dropOpsBelow)
    const seqs: number[] = []
    if (c.enqueue !== undefined && c.enqueue.length > 0) {
      let next = Number((db.prepare("SELECT value FROM meta WHERE key = 'next_seq'").get() as { value: string } | undefined)?.value ?? 1)
      const insert = db.prepare('INSERT INTO outbox (client_seq, op) VALUES (?, ?)')
      for (const op of c.enqueue) {
        insert.run(next, JSON.stringify(op))
        seqs.push(next++)
      }
      setMeta.run('next_seq', String(next))
    }
    const sent = db.prepare('INSERT OR REPLACE INTO sent (client_seq, entity, id, hlc) VALUES (?,?,?,?)')
    for (const s of c.sent ?? []) sent.run(s.client_seq, s.entity, s.id, s.hlc)
    const unsent = db.prepare('DELETE FROM sent WHERE client_seq = ?')
    for (const s of c.unsent ?? []) unsent.run(s)
    if (c.unsentFrom !== undefined) db.prepare('DELETE FROM sent WHERE client_seq >= ?').run(c.unsentFrom)
    const reject = db.prepare('INSERT OR REPLACE INTO rejections (client_seq, value) VALUES (?, ?)')
    for (const r of c.rejections ?? []) reject.run(r.client_seq, JSON.stringify(r))
    const notify = db.prepare('INSERT OR IGNORE INTO notifications (seq, kind, value) VALUES (?, ?, ?)')
    for (const n of c.notifications ?? []) notify.run(n.seq, n.kind, JSON.stringify(n))
    return seqs
  }

  async renumber (first: number): Promise<void> {
    this.db.transaction(() => {
      const ops = this.db.prepare('SELECT client_seq, op FROM outbox ORDER BY client_seq').all() as Array<{ client_seq: number, op: string }>
      this.db.prepare('DELETE FROM outbox').run()
      const insert = this.db.prepare('INSERT INTO outbox (client_seq, op) VALUES (?, ?)')
      ops.forEach((o, i) => insert.run(first + i, o.op))
      this.apply({ meta: { next_seq: first + ops.length } })
    })()
  }

  async wipe (): Promise<void> {
    this.db.transaction(() => {
      for (const t of ['outbox', 'sent', 'notes', 'projects', 'settings', 'rejections', 'notifications']) this.db.prepare(`DELETE FROM ${t}`).run()
    })()
  }

  async close (): Promise<void> {
    this.db.close()
  }
}

/** Open (or create) the SQLite store at `path` (`:memory:` for a throwaway one). */
export function openSqliteStore (path: string, name?: string): SqliteStore {
  return new SqliteStore(path, name)
}
