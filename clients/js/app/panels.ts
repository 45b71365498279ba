/**
 * The side panels that need the server: a note's history (with restore), a project's
 * members (sharing), and the open conflicts. Offline, each says so instead.
 */
import type { Json, SyncClient } from '../src/index.js'
import { explain, fill, h, when } from './dom.js'

/** Render `load()` into a panel titled `title`, with its error shown in place. */
function panel (title: string, load: (body: HTMLElement) => Promise<void>): HTMLElement {
  const body = h('div.panelbody', {}, h('p.muted', {}, 'Loading…'))
  const reload = (): void => { load(body).catch((e: unknown) => { fill(body, h('p.error', { role: 'alert' }, explain(e))) }) }
  reload()
  return h('section', { 'aria-label': title }, h('h2', {}, title), body)
}

function describe (entry: Json, first: boolean): string {
  const text = entry.text as TextDiff | undefined
  const parts: string[] = []
  const fields = entry.fields as Json | null | undefined
  if (first || entry.kind === 'put') parts.push(entry.kind === 'put' && !first ? 'shared with you' : 'created')
  else if (fields) parts.push(...Object.entries(fields).map(([k, v]) => `${k} → ${JSON.stringify(v)}`))
  if (entry.kind === 'delete') parts.push('moved to trash')
  if (entry.kind === 'restore') parts.push('restored')
  if (entry.kind === 'revoke') parts.push('unshared')
  if (text !== undefined) {
    if (text.inserted_chars > 0) parts.push(`+ “${text.inserted}”${text.inserted_chars > text.inserted.length ? '…' : ''}`)
    if (text.deleted_chars > 0) parts.push(`− “${text.deleted}”${text.deleted_chars > text.deleted.length ? '…' : ''}`)
  }
  return parts.join(', ') || String(entry.kind)
}

interface TextDiff { at: number, inserted: string, deleted: string, inserted_chars: number, deleted_chars: number }

/** One entry per run of typing: a device's text edits that continue each other. */
function typingRuns (entries: Json[]): Json[] {
  const out: Json[] = []
  for (const e of entries) {
    const last = out[out.length - 1]
    const a = last?.text as TextDiff | undefined
    const b = e.text as TextDiff | undefined
    if (last !== undefined && a !== undefined && b !== undefined && last.kind === 'text' && e.kind === 'text' &&
        last.device_id === e.device_id && a.deleted_chars === 0 && b.deleted_chars === 0 &&
        b.at === a.at + a.inserted_chars && a.inserted.length === a.inserted_chars) {
      out[out.length - 1] = { ...e, text: { ...a, inserted: a.inserted + b.inserted, inserted_chars: a.inserted_chars + b.inserted_chars } }
    } else {
      out.push(e)
    }
  }
  return out
}

export function historyPanel (client: SyncClient, noteId: string): HTMLElement {
  return panel('History', async (body) => {
    const page = await client.api.call<{ events: Json[] }>('GET', `/v1/notes/${noteId}/history?limit=200`)
    const restore = async (seq: number): Promise<void> => {
      await client.api.call('POST', `/v1/notes/${noteId}/revert`, { seq })
      await client.sync() // bring the reverted note here now, not at the next live frame
    }
    const runs = typingRuns(page.events)
    fill(body, h('ol.history', {}, ...runs.map((e, i) => h('li', {},
      h('span.meta', {}, when(String(e.at)), e.device_id === client.deviceId ? ' · this device' : ''),
      h('span', {}, describe(e, i === 0)),
      h('button.link', { onclick: () => { void restore(Number(e.seq)).catch((err: unknown) => { fill(body, h('p.error', {}, explain(err))) }) } }, 'Restore this version'))).reverse()))
    if (page.events.length === 0) body.append(h('p.muted', {}, 'No history on the server yet: this note has not synced.'))
  })
}

export function sharingPanel (client: SyncClient, projectId: string): HTMLElement {
  const load = async (body: HTMLElement): Promise<void> => {
    const members = await client.members(projectId)
    const email = h('input', { type: 'email', required: true, placeholder: 'Email', 'aria-label': 'Share with (email)' })
    const role = h('select', { 'aria-label': 'Role' }, h('option', { value: 'editor' }, 'can edit'), h('option', { value: 'viewer' }, 'can read'))
    const error = h('p.error', { role: 'alert' })
    const reload = async (): Promise<void> => { await load(body) }
    fill(body,
      h('ul.members', {}, ...members.map((m) => h('li', {},
        h('span', {}, String(m.email ?? m.user_id)), h('span.muted', {}, String(m.role)),
        m.role === 'owner' ? null : h('button.link', { onclick: () => { void client.unshare(projectId, String(m.user_id)).then(reload).catch((e: unknown) => { fill(error, explain(e)) }) } }, 'Remove')))),
      h('form.inline', {
        onsubmit: (e: Event) => {
          e.preventDefault()
          void client.share(projectId, email.value.trim(), role.value as 'editor' | 'viewer').then(reload).catch((err: unknown) => { fill(error, explain(err)) })
        }
      }, email, role, h('button.primary', { type: 'submit' }, 'Share')),
      error)
  }
  return panel('Sharing', load)
}

export function conflictsPanel (client: SyncClient, changed: () => Promise<void>): HTMLElement {
  const load = async (body: HTMLElement): Promise<void> => {
    const open = await client.conflicts('open')
    const titles = new Map<string, string>()
    for (const c of open) titles.set(String(c.entity_id), String((await client.note(String(c.entity_id)))?.title ?? '') || 'a note')
    const settle = async (id: string, choose: string): Promise<void> => {
      await client.resolveConflict(id, choose)
      await changed()
      await load(body)
    }
    const value = (side: unknown): string => JSON.stringify((side as Json | null)?.value)
    fill(body, open.length === 0 ? h('p.muted', {}, 'No open conflicts.') : h('ul.conflicts', {}, ...open.map((c) => h('li', {},
      h('strong', {}, `${String(c.field)} of ${titles.get(String(c.entity_id)) ?? ''}`),
      h('span', {}, `kept: ${value(c.winner === 'theirs' ? c.theirs : c.mine)}`),
      h('div.actions', {},
        h('button', { onclick: () => { void settle(String(c.id), 'mine') } }, `Use ${value(c.mine)}`),
        h('button', { onclick: () => { void settle(String(c.id), 'theirs') } }, `Use ${value(c.theirs)}`))))))
  }
  return panel('Conflicts', load)
}
