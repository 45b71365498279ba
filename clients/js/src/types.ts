/**
 * Vocabulary shared by the SDK's modules: entities, rows of the local projection,
 * ops and events as they travel (docs/protocol.md), and the `Store` interface that the
 * IndexedDB and SQLite adapters implement.
 */

/** `settings` is the user's one settings entity (its id the user's id): `set` ops only. */
export type EntityName = 'note' | 'project' | 'settings'
export type OpKind = 'set' | 'text' | 'delete' | 'restore'
export type Json = Record<string, unknown>

export const ENTITIES: readonly EntityName[] = ['note', 'project', 'settings']
export const NOTE_FIELDS: ReadonlySet<string> = new Set(['title', 'tags', 'pinned', 'favorite', 'project_id'])
export const PROJECT_FIELDS: ReadonlySet<string> = new Set(['title', 'description', 'word_goal', 'status', 'deadline'])
/** A project's `status` values. */
export const STATUSES: readonly string[] = ['active', 'paused', 'completed', 'archived']
/**
 * The prefix of an app's own field on a note or project: `meta.<key>`, each key its own
 * LWW register with its own clock (shown as one `meta` map in views).
 */
export const META = 'meta.'

/** The fixed LWW fields of a note or project (settings have none: every key is the app's). */
export function writableFields (entity: EntityName): ReadonlySet<string> {
  return entity === 'note' ? NOTE_FIELDS : entity === 'project' ? PROJECT_FIELDS : new Set()
}

/** Whether a device may `set` this field: a fixed field, `meta.<key>`, or any settings key. */
export function writable (entity: EntityName, name: string): boolean {
  if (entity === 'settings') return name.length > 0
  return writableFields(entity).has(name) || (name.startsWith(META) && name.length > META.length)
}

/** Field values a freshly created entity starts from (`deleted` included; none for settings). */
export function defaults (entity: EntityName): Json {
  if (entity === 'settings') return {}
  return entity === 'note'
    ? { title: '', tags: [], pinned: false, favorite: false, project_id: null, deleted: false }
    : { title: '', description: '', word_goal: 0, status: 'active', deadline: null, deleted: false }
}

/** The meta map of a note's or project's fields (cleared keys left out). */
export function metaOf (fields: Json): Json {
  const out: Json = {}
  for (const [k, v] of Object.entries(fields)) if (k.startsWith(META) && v !== null) out[k.slice(META.length)] = v
  return out
}

/** A map of values (meta, settings) as the fields that write it: `{color: 1}` → `{'meta.color': 1}`. */
export function metaFields (values: Json, prefix = META): Json {
  const out: Json = {}
  for (const [k, v] of Object.entries(values)) out[prefix + k] = v
  return out
}

/** One entity of the local projection. `fields` includes `deleted`; `clocks` is per field. */
export interface Row {
  entity: EntityName
  id: string
  fields: Json
  clocks: Record<string, string>
  body: string
  /** The note's Yjs document state (v1 update), or null for none yet. */
  bodyState: Uint8Array | null
  /** Values the server derives (word_count, members, progress...), as last sent. */
  derived: Json
  /**
   * Where the store that read this row keeps its document state (the IndexedDB store:
   * the pack holding it, or null when kept on its own); absent on a row not read from a
   * store. A store uses it to leave the state where it is when the row is saved
   * without it.
   */
  stateRef?: string | null
}

export function newRow (entity: EntityName, id: string): Row {
  return { entity, id, fields: {}, clocks: {}, body: '', bodyState: null, derived: {} }
}

/** An op as queued and pushed; `client_seq` is given by the store when it is queued. */
export interface Op {
  client_seq: number
  hlc: string
  entity: EntityName
  id: string
  kind: OpKind
  fields?: Json
  field?: 'body'
  /** base64 Yjs v1 update of a `text` op */
  update?: string
  base?: number
}

export type NewOp = Omit<Op, 'client_seq'>

/** An event of the user's log as the server sends it. */
export interface Event {
  seq: number
  entity: string
  id: string
  kind: string
  hlc?: string
  device_id?: string | null
  user_id?: string | null
  at?: string
  client_seq?: number | null
  fields?: Json | null
  field?: string | null
  update?: string | null
  clocks?: Record<string, string> | null
  body_state?: string | null
  deleted?: boolean | null
}

export interface OpResult {
  client_seq: number
  status: 'applied' | 'duplicate' | 'rejected'
  code?: string | null
  message?: string | null
  hlc?: string | null
}

export interface PushResponse {
  acked: number
  cursor: number
  results: OpResult[]
}

/** A pushed op whose canonical clock is not known yet. */
export interface Sent {
  client_seq: number
  entity: EntityName
  id: string
  hlc: string
}

/** An op the server refused, kept with its reason (it is not retried). */
export interface Rejection {
  client_seq: number
  entity: string
  id: string
  kind: string
  code: string
  message: string
  op: Json
}

/** Filters of a local note query; each one given narrows the result. */
export interface NoteFilter {
  projectId?: string | null
  tag?: string
  pinned?: boolean
  /** true: only deleted notes; false (the default): only live ones; null: both */
  deleted?: boolean | null
}

/** What one atomic write of the store does; every part is optional. */
export interface Changes {
  rows?: Row[]
  drop?: Array<{ entity: EntityName, id: string }>
  /** ops to queue, numbered from `meta.next_seq` inside the same transaction */
  enqueue?: NewOp[]
  meta?: Record<string, string | number | null>
  /** outbox entries consumed (by number), and all those below a number */
  dropOps?: number[]
  dropOpsBelow?: number
  sent?: Sent[]
  /** forget sent entries by number, or all from a number on */
  unsent?: number[]
  unsentFrom?: number
  rejections?: Rejection[]
  notifications?: Event[]
}

/**
 * How `commit` writes. `durable: false` is for a chunk of a larger write whose last
 * commit, durable, follows it: the store may report it done before it reaches the disk.
 */
export interface CommitOptions { durable?: boolean }

/** A row to read: which entity, which id. */
export interface RowKey { entity: EntityName, id: string }

/** What an `update`'s decision wants: more rows read first, or these changes applied. */
export type Decision = { read: RowKey[] } | { changes: Changes }

/**
 * Decides an `update` from the rows read so far (by `entity:id`, `undefined` when there
 * is none; read without document state) and the meta values asked for.
 */
export type Decide = (rows: ReadonlyMap<string, Row | undefined>, meta: Record<string, string | undefined>) => Decision

/**
 * The one interface the sync engine is written against. Each method is one short
 * transaction of its own; `commit` applies a whole `Changes` atomically.
 * `exclusive` runs `fn` while holding the account's write lock (across tabs in a
 * browser), so a read-modify-write never interleaves with another writer.
 */
export interface Store {
  readonly name: string
  exclusive: <T>(fn: () => Promise<T>) => Promise<T>
  getMeta: (key: string) => Promise<string | undefined>
  /** Several meta values in one read. */
  getMetas: (keys: string[]) => Promise<Record<string, string | undefined>>
  row: (entity: EntityName, id: string) => Promise<Row | undefined>
  /** Rows by id (all if `ids` is omitted); `withState: false` leaves `bodyState` null. */
  rows: (entity: EntityName, ids?: readonly string[], withState?: boolean) => Promise<Row[]>
  queryNotes: (filter: NoteFilter) => Promise<Row[]>
  /** The first `limit` queued ops, those numbered above `after` (0: from the head). */
  pending: (limit: number, after?: number) => Promise<Op[]>
  outboxSize: () => Promise<number>
  /**
   * The first clocks of this device's ops, by number: from `sent` (consumed ops whose
   * canonical clock is not known yet), else from the outbox (an op whose push response
   * was lost is still queued).
   */
  sent: (seqs: number[]) => Promise<Sent[]>
  rejections: () => Promise<Rejection[]>
  notifications: (kind?: string) => Promise<Event[]>
  /**
   * A read-modify-write in one transaction (a local edit): read `metaKeys` and the rows
   * `first`, then call `decide` (synchronous: an IndexedDB transaction cannot wait on
   * anything else) until it returns changes, and apply them. An error `decide` throws
   * aborts the transaction and is thrown. Returns the numbers given to `enqueue`.
   */
  update: (metaKeys: string[], first: RowKey[], decide: Decide) => Promise<number[]>
  /**
   * Apply `changes` in one transaction; return the numbers given to `changes.enqueue`.
   * Commits are applied in the order they are called, even when the caller does not
   * wait for one before calling the next.
   */
  commit: (changes: Changes, options?: CommitOptions) => Promise<number[]>
  /**
   * The order to write many rows in, in chunks of consecutive rows (several `commit`s):
   * rows the store keeps in one record next to each other, so each record is written by
   * as few chunks as can be. Absent: any order does.
   */
  bulkOrder?: (rows: readonly Row[]) => Row[]
  /** Renumber the queued ops contiguously from `first`, keeping their order. */
  renumber: (first: number) => Promise<void>
  /** Drop every entity, op, sent entry, rejection and notification (meta stays). */
  wipe: () => Promise<void>
  close: () => Promise<void>
}
