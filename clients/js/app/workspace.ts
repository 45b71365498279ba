/**
 * The signed-in page: a header (sync status, conflicts, account), the sidebar (search,
 * projects, the note list) and the open note. Lists are live queries of the local store
 * (`client.watch`), so they follow local edits, other devices and other tabs alike.
 */
import { parseHlc, type Json, type Status, type SyncClient } from '../src/index.js'
import { fill, h, when } from './dom.js'
import { openEditor, type Editor } from './editor.js'
import { conflictsPanel, sharingPanel } from './panels.js'

const STATUS: Record<Status, string> = {
  online: 'Online',
  connecting: 'Connecting…',
  offline: 'Offline: edits are kept on this device',
  standby: 'Synced by another tab',
  'signed-out': 'Signed out: sign in again to sync'
}

type Scope = { kind: 'all' } | { kind: 'project', id: string } | { kind: 'trash' }

export function workspace (root: HTMLElement, client: SyncClient, signOut: () => Promise<void>): void {
  let scope: Scope = { kind: 'all' }
  let search = ''
  let editor: Editor | null = null
  let unwatchNotes = (): void => {}

  const status = h('span.status', { role: 'status', 'aria-live': 'polite' })
  const pending = h('span.pending')
  const conflictsButton = h('button.conflict-count', { hidden: true, onclick: () => { showPanel(conflictsPanel(client, refreshConflicts)) } })
  const panel = h('aside.panel', { hidden: true })
  const projectList = h('nav.projects', { 'aria-label': 'Projects' })
  const noteList = h('ul.notes', { 'aria-label': 'Notes' })
  const listHead = h('div.listhead')
  const main = h('section.note', {}, h('p.empty', {}, 'Pick a note, or start a new one.'))
  const searchBox = h('input.search', {
    type: 'search', placeholder: 'Search notes', 'aria-label': 'Search notes',
    oninput: () => { search = searchBox.value; watchNotes() }
  })

  const showPanel = (content: HTMLElement | null): void => {
    panel.hidden = content === null
    if (content !== null) fill(panel, h('button.close', { 'aria-label': 'Close panel', onclick: () => showPanel(null) }, '×'), content)
  }

  let queued = 0
  const renderStatus = async (): Promise<void> => {
    const s = client.status
    fill(status, STATUS[s])
    status.dataset.state = s
    const n = await client.pending()
    fill(pending, n === 0 ? '' : `${n} change${n === 1 ? '' : 's'} to sync`)
    if (queued > 0 && n === 0) void refreshConflicts() // a push just landed: it may have met one
    queued = n
  }

  async function refreshConflicts (): Promise<void> {
    if (client.status !== 'online') return
    const open = await client.conflicts('open').catch(() => null)
    if (open === null) return
    conflictsButton.hidden = open.length === 0
    fill(conflictsButton, `${open.length} conflict${open.length === 1 ? '' : 's'}`)
  }

  const openNote = async (id: string): Promise<void> => {
    editor?.destroy()
    editor = await openEditor(client, id, {
      history: (panelEl) => showPanel(panelEl),
      share: (projectId) => showPanel(projectId === null
        ? h('p.muted', {}, 'Move this note into a project to share it.')
        : sharingPanel(client, projectId)),
      closed: () => { editor = null; fill(main, h('p.empty', {}, 'Pick a note, or start a new one.')) }
    })
    fill(main, editor.el)
    for (const li of noteList.children) li.classList.toggle('active', (li as HTMLElement).dataset.id === id)
  }

  const newNote = async (): Promise<void> => {
    const fields: Json = { title: '' }
    if (scope.kind === 'project') fields.project_id = scope.id
    const id = await client.createNote(fields)
    if (scope.kind === 'trash') scope = { kind: 'all' }
    await openNote(id)
    editor?.focusTitle()
  }

  const newProject = async (): Promise<void> => {
    const input = h('input', { 'aria-label': 'Project name', placeholder: 'Project name' })
    const form = h('form.inline', {
      onsubmit: (e: Event) => {
        e.preventDefault()
        const title = input.value.trim()
        if (title === '') return
        void client.createProject({ title }).then((id) => { scope = { kind: 'project', id }; watchNotes() })
      }
    }, input)
    projectList.append(form)
    input.focus()
  }

  const renderProjects = (projects: Json[]): void => {
    const item = (label: string, s: Scope, count?: string): HTMLElement => h('button.scope', {
      'aria-pressed': String(JSON.stringify(s) === JSON.stringify(scope)),
      onclick: () => { scope = s; watchNotes(); void client.projects().then(renderProjects) }
    }, label, count !== undefined ? h('span.muted', {}, count) : null)
    fill(projectList,
      item('All notes', { kind: 'all' }),
      ...projects.map((p) => item(String(p.title ?? '') || 'Untitled project', { kind: 'project', id: String(p.id) })),
      item('Trash', { kind: 'trash' }),
      h('button.link', { onclick: () => { void newProject() } }, '+ New project'))
    const current = scope.kind === 'project' ? projects.find((p) => p.id === (scope as { id: string }).id) : undefined
    fill(listHead,
      h('strong', {}, scope.kind === 'trash' ? 'Trash' : current !== undefined ? String(current.title ?? '') : 'All notes'),
      current !== undefined ? h('button.link', { onclick: () => showPanel(sharingPanel(client, String(current.id))) }, 'Share') : null)
  }

  const renderNotes = (notes: Json[]): void => {
    fill(noteList, ...notes.map((n) => h('li', { 'data-id': n.id, className: editor?.id === n.id ? 'active' : '' },
      h('button', { onclick: () => { void openNote(String(n.id)) } },
        h('span.title', {}, String(n.title ?? '') || 'Untitled'),
        h('span.snippet', {}, String(n.body ?? '').slice(0, 90) || ' '),
        h('span.meta', {}, n.pinned === true ? '📌 ' : '', typeof n.updated === 'string' && n.updated !== '' ? when(parseHlc(n.updated).wall) : '')))))
    if (notes.length === 0) noteList.append(h('li.muted', {}, search === '' ? 'No notes here yet.' : 'Nothing matches.'))
  }

  function watchNotes (): void {
    unwatchNotes()
    const query = scope.kind === 'trash'
      ? { deleted: true, text: search }
      : { projectId: scope.kind === 'project' ? scope.id : undefined, text: search }
    unwatchNotes = client.watch(async (c) => await c.notes(query), renderNotes)
    void client.projects().then(renderProjects)
  }

  client.onStatus(() => { void renderStatus(); void refreshConflicts() })
  // acks and pulls empty the outbox without changing a row: count it every second
  const ticker = window.setInterval(() => { void renderStatus() }, 1000)
  let conflictTimer: number | undefined
  client.subscribe(({ source }) => {
    void renderStatus()
    if (source === 'remote') { // a pulled conflict event: refresh the count, at most every 2 s
      clearTimeout(conflictTimer)
      conflictTimer = window.setTimeout(() => { void refreshConflicts() }, 2000)
    }
  })
  client.watch(async (c) => await c.projects(), renderProjects)
  watchNotes()
  void renderStatus()

  fill(root, h('div.shell', {},
    h('header.top', {},
      h('span.brand', {}, 'syncd notes'),
      status, pending, conflictsButton,
      h('span.spacer'),
      h('span.muted', {}, String(localStorage.getItem('syncd.account') ?? '')),
      h('button.link', { onclick: () => { clearInterval(ticker); void client.logout().catch(() => undefined).then(signOut) } }, 'Sign out')),
    h('aside.side', {},
      searchBox,
      h('button.primary.new', { onclick: () => { void newNote() } }, 'New note'),
      projectList, listHead, noteList),
    main, panel))
}
