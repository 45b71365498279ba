/**
 * The local projection's rules: remote events, snapshot entities and our own events
 * merged into rows. Pure apart from the open note documents it is handed, so applying
 * the same event twice, or an old event after a newer local edit, changes nothing.
 *
 * Events of this device carry their `client_seq`; when the server canonicalised such
 * an op's clock, the fields still carrying the original clock take the canonical one,
 * so every replica orders later writes the same way.
 */
import * as Y from 'yjs'
import { fromBase64 } from './base64.js'
import { rewriteClock, sameValue, setClocked, setFields } from './merge.js'
import { REMOTE, mergeInto, textOf } from './textdoc.js'
import { META, defaults, type EntityName, type Event, type Json, type Row, metaFields, metaOf, writable } from './types.js'

export const NOTIFICATION_KINDS: ReadonlySet<string> = new Set(['milestone', 'member', 'conflict'])
const NOT_DERIVED = new Set(['id', 'clocks', 'body', 'body_state', 'deleted', 'meta'])

export function entityName (name: string): EntityName | null {
  return name === 'note' || name === 'project' || name === 'settings' ? name : null
}

/**
 * A map of an entity as sent (a `meta` map, settings `values`) as the LWW fields that
 * wrote it: a key with a clock but no value was cleared (null).
 */
function unfold (values: Json, clocks: Record<string, string>, prefix: string): Json {
  const out: Json = {}
  for (const k of Object.keys(clocks)) if (k.startsWith(prefix)) out[k] = null
  return { ...out, ...metaFields(values, prefix) }
}

/** The open documents, by note id: text merges go through them so editors see them. */
export type DocLookup = (id: string) => Y.Doc | undefined

/** Merge a Yjs update into the row (and its open document); true if the text state changed. */
export function mergeText (row: Row, update: Uint8Array | null, docs: DocLookup): boolean {
  if (update === null || update.length === 0) return false
  const doc = docs(row.id)
  try {
    if (doc !== undefined) {
      let changed = false
      const seen = (): void => { changed = true }
      doc.on('update', seen)
      try {
        Y.applyUpdate(doc, update, REMOTE)
      } finally {
        doc.off('update', seen)
      }
      if (!changed && doc.store.pendingStructs === null) return false
      row.body = textOf(doc)
      row.bodyState = Y.encodeStateAsUpdate(doc)
      return true
    }
    const merged = mergeInto(row.bodyState, update)
    if (merged === null) return false
    row.body = merged.text
    row.bodyState = merged.state
    return true
  } catch {
    // an update that does not parse is skipped here, as the server refuses it there
    return false
  }
}

function b64 (value: unknown): Uint8Array | null {
  return typeof value === 'string' && value.length > 0 ? fromBase64(value) : null
}

/**
 * Merge a whole entity (a snapshot entity, or a `put` event's fields) field by field.
 * `flat` holds fields, `deleted` and derived values; `clocks` the field clocks.
 */
export function mergeEntity (row: Row, flat: Json, clocks: Record<string, string>,
  bodyState: Uint8Array | null, body: unknown, docs: DocLookup): boolean {
  const isField = (k: string): boolean => k === 'deleted' || writable(row.entity, k)
  const fields: Json = {}
  for (const [k, v] of Object.entries(flat)) if (isField(k)) fields[k] = v
  let changed = setClocked(row, fields, clocks).length > 0
  // a value without a clock (never written by anyone) only fills a gap
  for (const [name, value] of Object.entries({ ...defaults(row.entity), ...fields })) {
    if (!(name in row.fields)) {
      row.fields[name] = value
      changed = true
    }
  }
  const derived: Json = {}
  let derivedChanged = false
  for (const [k, v] of Object.entries(flat)) {
    if (isField(k) || NOT_DERIVED.has(k)) continue
    derived[k] = v
    if (!sameValue(row.derived[k], v)) derivedChanged = true
  }
  if (derivedChanged) {
    row.derived = { ...row.derived, ...derived }
    changed = true
  }
  if (bodyState !== null) {
    if (row.bodyState === null && docs(row.id) === undefined && typeof body === 'string') {
      // a fresh row takes the server's state as it is: no document needs to be built
      row.bodyState = bodyState
      row.body = body
      changed = true
    } else {
      changed = mergeText(row, bodyState, docs) || changed
    }
  }
  return changed
}

/** Merge one snapshot entity into `row` (the settings: `values` and `clocks`). */
export function applyEntity (row: Row, flat: Json, docs: DocLookup): boolean {
  const clocks = (flat.clocks ?? {}) as Record<string, string>
  if (row.entity === 'settings') {
    return setClocked(row, unfold((flat.values ?? {}) as Json, clocks, ''), clocks).length > 0
  }
  const unfolded = { ...flat, ...unfold((flat.meta ?? {}) as Json, clocks, META) }
  return mergeEntity(row, unfolded, clocks, b64(flat.body_state), flat.body, docs)
}

/**
 * Apply one data event (`set`, `text`, `delete`, `restore`, `put`) to `row`.
 * `sentHlc` is the clock this device first gave the op, when the event is its own.
 * Returns whether the row's visible state changed.
 */
export function applyEvent (row: Row, ev: Event, sentHlc: string | undefined, docs: DocLookup): boolean {
  const hlc = ev.hlc ?? ''
  let changed = false
  if (sentHlc !== undefined && sentHlc !== hlc && hlc !== '') {
    changed = rewriteClock(row, sentHlc, hlc)
  }
  switch (ev.kind) {
    case 'set':
      return setFields(row, ev.fields ?? {}, hlc).length > 0 || changed
    case 'delete':
    case 'restore':
      return setFields(row, { deleted: ev.kind === 'delete' }, hlc).length > 0 || changed
    case 'text': {
      // "fields are as the op sent them": a text op carries `update` at the top level
      const update = b64(ev.update) ?? b64(ev.fields?.update)
      return mergeText(row, update, docs) || changed
    }
    case 'put': {
      // the entity is someone else's, shared with us by its project's owner
      if (row.derived.owner_id === undefined && typeof ev.user_id === 'string') row.derived.owner_id = ev.user_id
      const flat: Json = { ...(ev.fields ?? {}) }
      if (typeof ev.deleted === 'boolean' && !('deleted' in flat)) flat.deleted = ev.deleted
      return mergeEntity(row, flat, ev.clocks ?? {}, b64(ev.body_state), undefined, docs) || changed
    }
    default:
      return changed
  }
}

/** A `member` event: a user's role in the project changed (`role` null: removed). */
export function applyMember (project: Row, ev: Event): boolean {
  const userId = ev.fields?.user_id
  const role = ev.fields?.role
  if (typeof userId !== 'string') return false
  const members = ((project.derived.members ?? []) as Array<{ user_id: string, role: string }>)
    .filter((m) => m.user_id !== userId)
  if (typeof role === 'string') members.push({ user_id: userId, role })
  project.derived = { ...project.derived, members }
  if (project.derived.owner_id === undefined && typeof ev.user_id === 'string' && ev.user_id !== userId) {
    project.derived.owner_id = ev.user_id // only the owner manages members
  }
  return true
}

/**
 * A flat read-only view of a row, shaped like the server's Entity: the app's own
 * `meta.<key>` fields as one `meta` map (cleared keys left out).
 */
export function view (row: Row): Json {
  const out: Json = { id: row.id, ...defaults(row.entity), ...row.derived }
  for (const [k, v] of Object.entries(row.fields)) if (!k.startsWith(META)) out[k] = v
  out.meta = metaOf(row.fields)
  out.deleted = row.fields.deleted === true
  if (row.entity === 'note') {
    out.body = row.body
    out.word_count = row.body.split(/\s+/).filter((w) => w.length > 0).length
  }
  let updated = ''
  for (const c of Object.values(row.clocks)) if (c > updated) updated = c
  out.updated = updated
  return out
}
