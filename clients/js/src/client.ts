/**
 * `SyncClient`: the offline-first API an app uses.
 *
 * A local edit changes the local store and queues its op in one store transaction, so
 * it survives a reload and needs no network. `sync()` pushes the outbox and pulls the
 * log over HTTP, `start()` stays in sync over the sync socket (`live.ts`). Remote
 * events are merged by `projection.ts` (LWW per field by HLC, Yjs text), which is also
 * why replays and stale events are harmless. A note's body is a `Y.Doc` (`doc(id)`):
 * local changes to it become `text` ops; a `WebsocketProvider` attached with
 * `attach()` is a remote peer whose updates are stored but not queued again.
 */
import * as Y from 'yjs'
import { Api, type LoginResponse, type User } from './api.js'
import { toBase64 } from './base64.js'
import { ApiError, NotFound, NotSignedIn, ReadOnly } from './errors.js'
import { Clock } from './hlc.js'
import { Live, type LiveOptions, type Status } from './live.js'
import { setFields } from './merge.js'
import { MAX_BATCH, Outbox } from './outbox.js'
import { view } from './projection.js'
import { type ApplyContext, applyBatch, loadSnapshot } from './sync.js'
import { TabChannel } from './tabs.js'
import { REMOTE, newDoc, replaceText, textOf } from './textdoc.js'
import {
  type Changes, type EntityName, type Event, type Json, type NewOp, type NoteFilter, type OpKind, type PushResponse,
  type Rejection, type Row, type Store, defaults, metaFields, newRow, writable
} from './types.js'

export interface ClientOptions extends LiveOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:8000` or `location.origin`. */
  url: string
}

/** What changed, and where the change came from. */
export interface Change {
  ids: string[]
  source: 'local' | 'remote' | 'tab'
}
export type Listener = (change: Change) => void

export interface SyncResult { pushed: number, pulled: number }

export interface NoteQuery extends NoteFilter {
  /** a case-insensitive substring of the title or body */
  text?: string
}

const MAX_GAP_RETRIES = 3

function compareViews (a: Json, b: Json): number {
  // pinned first, then the most recently written
  const pin = Number(b.pinned === true) - Number(a.pinned === true)
  if (pin !== 0) return pin
  return String(b.updated).localeCompare(String(a.updated))
}

export class SyncClient {
  readonly api: Api
  readonly outbox: Outbox
  private readonly clock: Clock
  private readonly listeners = new Set<Listener>()
  private readonly statusListeners = new Set<(s: Status) => void>()
  private readonly docs = new Map<string, Y.Doc>()
  /** per note, the origins whose updates are remote (attached providers) */
  private readonly remoteOrigins = new Map<string, Set<unknown>>()
  private textWrites: Promise<unknown> = Promise.resolve()
  /** per note, local updates made to its open document and not yet stored as ops */
  private readonly unsaved = new Map<string, Uint8Array[]>()
  private syncing: Promise<unknown> = Promise.resolve()
  private readonly tabs: TabChannel
  private live: Live | null = null
  private statusValue: Status = 'offline'

  private constructor (readonly store: Store, private readonly options: ClientOptions,
    private device: { deviceId?: string, userId?: string, email?: string }, last?: string) {
    this.api = new Api(options.url.replace(/\/+$/, ''), store)
    this.api.onSignedOut = () => this.setStatus('signed-out')
    this.outbox = new Outbox(store)
    this.clock = new Clock(device.deviceId ?? 'local', last)
    this.tabs = new TabChannel(store.name, {
      changed: (ids) => { void this.onTabChange(ids) },
      outbox: () => this.live?.kick()
    })
  }

  /** A client on `store` (see `openIndexedDbStore`, `openSqliteStore`). */
  static async open (store: Store, options: ClientOptions): Promise<SyncClient> {
    const [deviceId, userId, email, last] = await Promise.all(
      ['device_id', 'user_id', 'email', 'last_hlc'].map(async (k) => await store.getMeta(k)))
    return new SyncClient(store, options, { deviceId, userId, email }, last)
  }

  async close (): Promise<void> {
    await this.stop()
    await this.flush()
    this.tabs.close()
    for (const doc of this.docs.values()) doc.destroy()
    this.docs.clear()
    await this.store.close()
  }

  // --- state ----------------------------------------------------------------------------

  get deviceId (): string | undefined { return this.device.deviceId }
  get userId (): string | undefined { return this.device.userId }
  get status (): Status { return this.statusValue }

  async cursor (): Promise<number> { return Number(await this.store.getMeta('cursor') ?? 0) }
  async acked (): Promise<number> { return Number(await this.store.getMeta('acked') ?? 0) }
  async signedIn (): Promise<boolean> { return (await this.store.getMeta('refresh_token')) !== undefined }
  /** How many ops wait in the outbox. */
  async pending (): Promise<number> { return await this.store.outboxSize() }

  onStatus (fn: (s: Status) => void): () => void {
    this.statusListeners.add(fn)
    return () => this.statusListeners.delete(fn)
  }

  /** @internal used by the live loop */
  setStatus (s: Status): void {
    if (s === this.statusValue) return
    this.statusValue = s
    for (const fn of this.statusListeners) fn(s)
  }

  // --- identity -------------------------------------------------------------------------

  async register (email: string, password: string, name?: string): Promise<User> {
    const body: Json = { email, password }
    if (name !== undefined) body.name = name
    return (await this.api.anonymous<{ user: User }>('POST', '/v1/auth/register', body)).user
  }

  /** Sign in as a new device of this store (every login creates a device). */
  async login (email: string, password: string, deviceName: string, platform = 'js'): Promise<User & { device_id: string }> {
    const res = await this.api.anonymous<LoginResponse>('POST', '/v1/auth/login',
      { email, password, device: { name: deviceName, platform } })
    await this.store.exclusive(async () => {
      const previous = await this.store.getMeta('user_id')
      if (previous !== undefined && previous !== res.user.id) {
        await this.store.wipe()
        await this.store.commit({ meta: { cursor: 0, next_seq: 1, acked: 0 } })
        for (const doc of this.docs.values()) doc.destroy()
        this.docs.clear()
      }
      await this.adoptDevice(res.device_id)
      await this.store.commit({
        meta: {
          user_id: res.user.id, email: res.user.email, device_id: res.device_id,
          access_token: res.access_token, refresh_token: res.refresh_token
        }
      })
    })
    this.device = { deviceId: res.device_id, userId: res.user.id, email: res.user.email }
    this.setStatus('offline')
    return { ...res.user, device_id: res.device_id }
  }

  /** End this device on the server; local data stays (sign in again to sync it). */
  async logout (): Promise<void> {
    await this.stop()
    try {
      await this.api.call('POST', '/v1/auth/logout')
    } finally {
      await this.store.commit({ meta: { access_token: null, refresh_token: null } })
      this.setStatus('signed-out')
    }
  }

  /** Number from 1 again and re-stamp queued ops: their clocks must name the new device. */
  private async adoptDevice (deviceId: string): Promise<void> {
    const oldNode = this.clock.node
    const ops = await this.store.pending(Number.MAX_SAFE_INTEGER)
    const rows = new Map<string, Row>()
    const requeued: NewOp[] = []
    for (const { client_seq: _seq, ...op } of ops) {
      const hlc = op.hlc.endsWith(oldNode) ? op.hlc.slice(0, op.hlc.length - oldNode.length) + deviceId : op.hlc
      const key = `${op.entity}:${op.id}`
      const row = rows.get(key) ?? await this.store.row(op.entity, op.id)
      if (row !== undefined) {
        for (const [name, clock] of Object.entries(row.clocks)) if (clock === op.hlc) row.clocks[name] = hlc
        rows.set(key, row)
      }
      requeued.push({ ...op, hlc })
    }
    this.clock.node = deviceId
    await this.store.commit({
      dropOpsBelow: Number.MAX_SAFE_INTEGER,
      unsentFrom: 0,
      meta: { next_seq: 1, acked: 0, device_id: deviceId, last_hlc: this.clock.last },
      rows: [...rows.values()],
      enqueue: requeued
    })
  }

  // --- local edits ----------------------------------------------------------------------

  private requireDevice (): void {
    if (this.device.deviceId === undefined) throw new NotSignedIn('sign in first: ops are stamped with the device id')
  }

  /** A new clock and the cursor, for an op made now (the caller holds the lock). */
  private async stamp (): Promise<{ hlc: string, base: number }> {
    const meta = await this.store.getMetas(['last_hlc', 'cursor'])
    // another tab may have stamped ops since: never issue a clock it issued
    if (meta.last_hlc !== undefined) this.clock.observe(meta.last_hlc)
    return { hlc: this.clock.tick(), base: Number(meta.cursor ?? 0) }
  }

  /**
   * Stamp, apply locally and queue one op: the row's read, the check and the write are
   * one store transaction (a field write reads the row without its note document, and
   * leaves the stored one as it is).
   */
  private async queue (entity: EntityName, id: string, kind: OpKind, fields: Json | undefined,
    mustExist: boolean): Promise<void> {
    this.requireDevice()
    const key = `${entity}:${id}`
    await this.store.exclusive(async () => await this.store.update(['last_hlc', 'cursor'], [{ entity, id }], (rows, meta) => {
      const found = rows.get(key)
      if (found === undefined && mustExist) throw new NotFound(`no ${entity} ${id}`)
      if (found !== undefined) {
        const project = this.projectOf(found)
        if (project !== undefined && !rows.has(`project:${project}`)) return { read: [{ entity: 'project', id: project }] }
        if (this.roleIn(found, project === undefined ? undefined : rows.get(`project:${project}`)) === 'viewer') {
          throw new ReadOnly(`${entity} ${id} is read-only here`)
        }
      }
      const row = found ?? newRow(entity, id)
      // another tab may have stamped ops since: never issue a clock it issued
      if (meta.last_hlc !== undefined) this.clock.observe(meta.last_hlc)
      const hlc = this.clock.tick()
      const op: NewOp = { hlc, entity, id, kind, base: Number(meta.cursor ?? 0) }
      if (kind === 'set') {
        op.fields = fields
        setFields(row, fields ?? {}, hlc)
      } else {
        setFields(row, { deleted: kind === 'delete' }, hlc)
      }
      if (found === undefined) {
        for (const [k, v] of Object.entries(defaults(entity))) {
          if (!(k in row.fields)) row.fields[k] = v
        }
      }
      return { changes: { rows: [row], enqueue: [op], meta: { last_hlc: hlc } } }
    }))
    this.emit({ ids: [id], source: 'local' })
    this.tabs.post({ type: 'changed', ids: [id] })
    this.tabs.post({ type: 'outbox' })
    this.live?.kick()
  }

  /**
   * The fields that write `fields`: a `meta` map `{key: value or null}` becomes the
   * `meta.<key>` fields (null clears a key); unknown fields are refused here.
   */
  private opFields (entity: EntityName, fields: Json): Json {
    const { meta, ...rest } = fields
    const out: Json = { ...rest, ...(meta === undefined || meta === null ? {} : metaFields(meta as Json)) }
    const unknown = Object.keys(out).filter((k) => !writable(entity, k))
    if (unknown.length > 0) throw new RangeError(`unknown ${entity} field(s): ${unknown.join(', ')}`)
    return out
  }

  private async create (entity: EntityName, fields: Json): Promise<string> {
    const { body, ...rest } = fields
    const set = this.opFields(entity, rest)
    const id = crypto.randomUUID()
    await this.queue(entity, id, 'set', { title: '', ...set }, false)
    if (typeof body === 'string' && body !== '') await this.setBody(id, body)
    return id
  }

  private async update (entity: EntityName, id: string, fields: Json): Promise<void> {
    const { body, ...rest } = fields
    const set = this.opFields(entity, rest)
    if (Object.keys(set).length > 0) await this.queue(entity, id, 'set', set, true)
    if (typeof body === 'string') await this.setBody(id, body)
  }

  /**
   * Create a note (fields: title, tags, pinned, favorite, project_id, body, and `meta`,
   * a map of the app's own keys to JSON values); return its id. An update's `meta` sets
   * only the keys it names (null clears one).
   */
  async createNote (fields: Json = {}): Promise<string> { return await this.create('note', fields) }
  async updateNote (id: string, fields: Json): Promise<void> { await this.update('note', id, fields) }
  async deleteNote (id: string): Promise<void> { await this.queue('note', id, 'delete', undefined, true) }
  async restoreNote (id: string): Promise<void> { await this.queue('note', id, 'restore', undefined, true) }
  /**
   * Create a project (fields: title, description, word_goal, status (`active`, `paused`,
   * `completed`, `archived`), deadline (`YYYY-MM-DD` or null), meta); return its id.
   */
  async createProject (fields: Json = {}): Promise<string> { return await this.create('project', fields) }
  async updateProject (id: string, fields: Json): Promise<void> { await this.update('project', id, fields) }
  async deleteProject (id: string): Promise<void> { await this.queue('project', id, 'delete', undefined, true) }
  async restoreProject (id: string): Promise<void> { await this.queue('project', id, 'restore', undefined, true) }

  // --- settings -------------------------------------------------------------------------

  /** The user's settings as this device holds them: key → JSON value (cleared keys left out). */
  async settings (): Promise<Json> {
    const id = this.device.userId
    const row = id === undefined ? undefined : await this.store.row('settings', id)
    const out: Json = {}
    for (const [k, v] of Object.entries(row?.fields ?? {})) if (v !== null) out[k] = v
    return out
  }

  /**
   * Set some of the user's settings (null clears a key), offline like any edit; the
   * others stay as they are. Each key is its own LWW register, so devices editing
   * different keys both keep theirs.
   */
  async setSettings (values: Json): Promise<void> {
    const id = this.device.userId
    if (id === undefined) throw new NotSignedIn('sign in first: settings are the user\'s')
    const fields = this.opFields('settings', values)
    if (Object.keys(fields).length > 0) await this.queue('settings', id, 'set', fields, false)
  }

  // --- note bodies ----------------------------------------------------------------------

  /**
   * The note's body as a `Y.Doc` (root `Y.Text` "body"), one per note per client.
   * Edit it directly or through an editor binding; `closeDoc` lets it go.
   */
  async doc (noteId: string): Promise<Y.Doc> {
    const open = this.docs.get(noteId)
    if (open !== undefined) return open
    const row = await this.store.row('note', noteId)
    if (row === undefined) throw new NotFound(`no note ${noteId}`)
    const again = this.docs.get(noteId) // opened meanwhile
    if (again !== undefined) return again
    const doc = newDoc(row.bodyState)
    doc.on('update', (update: Uint8Array, origin: unknown) => {
      if (origin === REMOTE) return
      const local = this.remoteOrigins.get(noteId)?.has(origin) !== true
      if (local) {
        const waiting = this.unsaved.get(noteId)
        if (waiting === undefined) this.unsaved.set(noteId, [update])
        else waiting.push(update)
      }
      this.textWrites = this.textWrites.then(async () => await this.saveText(noteId, doc, local))
        .catch((e: unknown) => { console.error('syncd: saving a text edit failed', e) })
    })
    this.docs.set(noteId, doc)
    return doc
  }

  /** Forget the note's open document (it is saved already). */
  closeDoc (noteId: string): void {
    this.docs.get(noteId)?.destroy()
    this.docs.delete(noteId)
    this.remoteOrigins.delete(noteId)
  }

  /**
   * Mark `origin` (a `WebsocketProvider` on `/v1/collab/{id}` bound to `doc(id)`) as a
   * remote peer: what it brings is stored but not queued as our own ops. Local edits are
   * queued either way, so nothing typed offline is lost; Yjs merges the duplicate.
   */
  attach (noteId: string, origin: unknown): void {
    let set = this.remoteOrigins.get(noteId)
    if (set === undefined) this.remoteOrigins.set(noteId, set = new Set())
    set.add(origin)
  }

  /** Wait until every edit made to open documents so far is stored (and queued). */
  async flush (): Promise<void> {
    let current: Promise<unknown>
    do {
      current = this.textWrites
      await current
    } while (current !== this.textWrites)
  }

  /**
   * Store the note's document, and queue as one op every local update not queued yet.
   * The stored state is the whole document, which already holds updates whose own save
   * is still waiting in line: they are queued in this same commit, so a page closed
   * before their turn loses neither them nor their ops (the stored text and the outbox
   * always agree).
   */
  private async saveText (noteId: string, doc: Y.Doc, local: boolean): Promise<void> {
    if (local) this.requireDevice()
    let queued = false
    await this.store.exclusive(async () => {
      const row = await this.store.row('note', noteId)
      if (row === undefined) return // revoked meanwhile
      if (local && await this.roleOf(row) === 'viewer') {
        // the server would refuse it: an editor bound to a viewer's document is read-only
        console.warn(`syncd: note ${noteId} is read-only here; the edit is not kept`)
        this.unsaved.delete(noteId)
        return
      }
      // what another tab stored since this document was loaded
      if (row.bodyState !== null) Y.applyUpdate(doc, row.bodyState, REMOTE)
      // the state and the updates to queue are taken together, with no await between
      row.body = textOf(doc)
      row.bodyState = Y.encodeStateAsUpdate(doc)
      const updates = this.unsaved.get(noteId) ?? []
      this.unsaved.delete(noteId)
      const changes: Changes = { rows: [row] }
      if (updates.length > 0) { // local ones, even when this save is for a provider's update
        const update = updates.length === 1 ? updates[0] as Uint8Array : Y.mergeUpdates(updates)
        const { hlc, base } = await this.stamp()
        changes.enqueue = [{ hlc, entity: 'note', id: noteId, kind: 'text', field: 'body', update: toBase64(update), base }]
        changes.meta = { last_hlc: hlc }
        queued = true
      }
      await this.store.commit(changes)
    })
    this.emit({ ids: [noteId], source: local ? 'local' : 'remote' })
    this.tabs.post({ type: 'changed', ids: [noteId] })
    if (queued) {
      this.tabs.post({ type: 'outbox' })
      this.live?.kick()
    }
  }

  /** Make the body `text` by one minimal edit (common prefix and suffix kept). */
  async setBody (noteId: string, text: string): Promise<void> {
    replaceText(await this.doc(noteId), text)
    await this.flush()
  }

  async insertText (noteId: string, index: number, text: string): Promise<void> {
    (await this.doc(noteId)).getText('body').insert(index, text)
    await this.flush()
  }

  async deleteText (noteId: string, index: number, length: number): Promise<void> {
    (await this.doc(noteId)).getText('body').delete(index, length)
    await this.flush()
  }

  // --- queries --------------------------------------------------------------------------

  async notes (q: NoteQuery = {}): Promise<Json[]> {
    const { text, ...filter } = q
    let rows = await this.store.queryNotes(filter)
    if (text !== undefined && text !== '') {
      const needle = text.toLowerCase()
      rows = rows.filter((r) => String(r.fields.title ?? '').toLowerCase().includes(needle) ||
        r.body.toLowerCase().includes(needle))
    }
    return rows.map(view).sort(compareViews)
  }

  async note (id: string): Promise<Json | undefined> {
    const row = await this.store.row('note', id)
    return row === undefined ? undefined : view(row)
  }

  async projects (includeDeleted = false): Promise<Json[]> {
    const rows = await this.store.rows('project')
    return rows.filter((r) => includeDeleted || r.fields.deleted !== true).map(view).sort(compareViews)
  }

  async project (id: string): Promise<Json | undefined> {
    const row = await this.store.row('project', id)
    return row === undefined ? undefined : view(row)
  }

  /**
   * This user's role on an entity, from local data: `owner` of what they created, else
   * their role in the note's project as the server last described its members.
   */
  async role (entity: EntityName, id: string): Promise<'owner' | 'editor' | 'viewer' | undefined> {
    const row = await this.store.row(entity, id)
    return row === undefined ? undefined : await this.roleOf(row)
  }

  private async roleOf (row: Row): Promise<'owner' | 'editor' | 'viewer'> {
    const projectId = this.projectOf(row)
    return this.roleIn(row, projectId === undefined ? undefined : await this.store.row('project', projectId))
  }

  /** The project whose members say what this user may do with `row`, if it is someone else's. */
  private projectOf (row: Row): string | undefined {
    const owner = row.derived.owner_id
    if (owner === undefined || owner === this.device.userId) return undefined
    const projectId = row.entity === 'project' ? row.id : row.fields.project_id
    return typeof projectId === 'string' ? projectId : undefined
  }

  private roleIn (row: Row, project: Row | undefined): 'owner' | 'editor' | 'viewer' {
    const owner = row.derived.owner_id
    if (owner === undefined || owner === this.device.userId) return 'owner'
    const members = (project?.derived.members ?? []) as Array<{ user_id: string, role: string }>
    const mine = members.find((m) => m.user_id === this.device.userId)?.role
    return mine === 'owner' || mine === 'editor' ? mine : 'viewer'
  }

  /** Ops the server refused, with its `code` and `message` (they are not retried). */
  async rejections (): Promise<Rejection[]> { return await this.store.rejections() }
  /** Milestone, member and conflict events, as the server sent them. */
  async notifications (kind?: string): Promise<Event[]> { return await this.store.notifications(kind) }

  /** Call `listener` on every change of local data; returns the unsubscribe function. */
  subscribe (listener: Listener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Run `query` now and again after every change, handing its result to `onData`. */
  watch<T> (query: (client: SyncClient) => Promise<T>, onData: (data: T) => void): () => void {
    let stopped = false
    let run: Promise<unknown> = Promise.resolve()
    const rerun = (): void => {
      run = run.then(async () => { if (!stopped) { const data = await query(this); if (!stopped) onData(data) } })
        .catch((e: unknown) => { console.error('syncd: watch query failed', e) })
    }
    const off = this.subscribe(rerun)
    rerun()
    return () => { stopped = true; off() }
  }

  private emit (change: Change): void {
    if (change.ids.length === 0) return
    for (const fn of this.listeners) {
      try {
        fn(change)
      } catch (e) { // an app's listener must not break syncing
        console.error('syncd: listener failed', e)
      }
    }
  }

  private async onTabChange (ids: string[]): Promise<void> {
    // another tab stored these: bring open documents up to date
    for (const id of ids) {
      const doc = this.docs.get(id)
      if (doc === undefined) continue
      const row = await this.store.row('note', id)
      if (row?.bodyState) Y.applyUpdate(doc, row.bodyState, REMOTE)
    }
    this.emit({ ids, source: 'tab' })
  }

  // --- conflicts and sharing (online) --------------------------------------------------

  async conflicts (status: 'open' | 'resolved' | 'all' = 'open'): Promise<Json[]> {
    return (await this.api.call<{ conflicts: Json[] }>('GET', `/v1/conflicts?status=${status}`)).conflicts
  }

  /** Settle a conflict: `"mine"`, `"theirs"`, or the value itself. */
  async resolveConflict (id: string, choose: unknown): Promise<Json> {
    return await this.api.call<Json>('POST', `/v1/conflicts/${id}/resolve`, { choose })
  }

  async share (projectId: string, email: string, role: 'editor' | 'viewer'): Promise<Json> {
    return await this.api.call<Json>('POST', `/v1/projects/${projectId}/members`, { email, role })
  }

  async members (projectId: string): Promise<Json[]> {
    const r = await this.api.call<{ members: Json[] } | Json[]>('GET', `/v1/projects/${projectId}/members`)
    return Array.isArray(r) ? r : r.members
  }

  async unshare (projectId: string, userId: string): Promise<void> {
    await this.api.call('DELETE', `/v1/projects/${projectId}/members/${userId}`)
  }

  // --- sync -----------------------------------------------------------------------------

  /** Run sync steps one at a time (the live loop and explicit calls share the outbox). */
  private async serial<T> (fn: () => Promise<T>): Promise<T> {
    const result = this.syncing.then(fn)
    this.syncing = result.catch(() => undefined)
    return await result
  }

  /** Push the whole outbox in batches; return how many ops the server answered. */
  async push (): Promise<number> {
    this.requireDevice()
    return await this.serial(async () => {
      await this.flush()
      let pushed = 0
      let gaps = 0
      // Batches go to the server one at a time, in order (their client_seq must follow
      // on), but the store's work overlaps the server's: the next batch is read while
      // one is in flight, and a response is consumed while the next batch is in flight.
      let consuming: Promise<void> = Promise.resolve()
      let ops = await this.store.exclusive(async () => await this.outbox.nextBatch(MAX_BATCH))
      try {
        while (ops.length > 0) {
          const batch = ops
          const last = batch[batch.length - 1]?.client_seq ?? 0
          const next = this.store.exclusive(async () => await this.outbox.nextBatch(MAX_BATCH, last))
          let resp: PushResponse
          try {
            resp = await this.api.push(batch)
          } catch (e) {
            await next.catch(() => undefined)
            await consuming
            if (e instanceof ApiError && e.code === 'client_seq_gap' && gaps < MAX_GAP_RETRIES) {
              gaps++
              await this.store.exclusive(async () => await this.outbox.onGap(Number(e.details.expected)))
              ops = await this.store.exclusive(async () => await this.outbox.nextBatch(MAX_BATCH))
              continue
            }
            throw e
          }
          await consuming // responses are consumed in the order of their batches
          consuming = this.store.exclusive(async () => { await this.outbox.onResponse(batch, resp) })
          consuming.catch(() => undefined) // its failure is thrown where it is awaited, not as unhandled
          pushed += resp.results.length
          ops = await next
        }
      } finally {
        await consuming
      }
      return pushed
    })
  }

  /** Apply events in log order, skipping those at or below the cursor; return changed ids. */
  async applyEvents (events: Event[]): Promise<string[]> {
    const changed = await this.store.exclusive(async () => await applyBatch(this.context(), events))
    this.emit({ ids: changed, source: 'remote' })
    this.tabs.post({ type: 'changed', ids: changed })
    return changed
  }

  private context (): ApplyContext {
    return {
      store: this.store,
      clock: this.clock,
      deviceId: this.device.deviceId,
      docs: (id) => this.docs.get(id),
      closeDoc: (id) => this.closeDoc(id)
    }
  }

  /** Pull every event after the cursor; return how many were applied. */
  async pull (limit = 1000): Promise<number> {
    this.requireDevice()
    return await this.serial(async () => await this.pullPages(limit))
  }

  /** @internal the pull loop without the sync serialisation (the live loop holds it) */
  async pullPages (limit = 1000): Promise<number> {
    let applied = 0
    for (;;) {
      const before = await this.cursor()
      const page = await this.api.pull(before, limit)
      await this.applyEvents(page.events)
      applied += (await this.cursor()) - before
      if (!page.has_more || page.events.length === 0) return applied
    }
  }

  /** Push the outbox, then pull until caught up. */
  async sync (): Promise<SyncResult> {
    const pushed = await this.push()
    const pulled = await this.pull()
    return { pushed, pulled }
  }

  /** A new device: load the snapshot, then sync from its cursor. */
  async bootstrap (): Promise<SyncResult> {
    this.requireDevice()
    const snap = await this.api.snapshot()
    const changed = await this.store.exclusive(async () => await loadSnapshot(this.context(), snap))
    this.emit({ ids: changed, source: 'remote' })
    this.tabs.post({ type: 'changed', ids: changed })
    return await this.sync()
  }

  /**
   * Stay in sync over the sync socket until `stop()`, reconnecting with backoff. In a
   * browser with several tabs open, one tab syncs (a Web Lock) and the others follow.
   */
  start (): void {
    this.requireDevice()
    if (this.live !== null) return
    this.live = new Live(this, this.options)
    this.live.start()
  }

  async stop (): Promise<void> {
    const live = this.live
    this.live = null
    await live?.stop()
  }

  /** Reconnect now instead of waiting for the next backoff step. */
  reconnect (): void {
    this.live?.reconnectNow()
  }

  /** @internal for the live loop: the serialised sync step */
  async liveStep<T> (fn: () => Promise<T>): Promise<T> {
    return await this.serial(fn)
  }
}
