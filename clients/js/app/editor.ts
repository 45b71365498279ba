/**
 * The open note: its title and fields, and its body in CodeMirror bound to the note's
 * `Y.Doc` by the stock `y-codemirror.next` binding. Typing edits the document; the SDK
 * turns each update into a queued `text` op, and pulled updates flow back into the view.
 */
import { EditorState } from '@codemirror/state'
import { EditorView, keymap, placeholder } from '@codemirror/view'
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next'
import { ROOT, type Json, type SyncClient } from '../src/index.js'
import { explain, h } from './dom.js'
import { historyPanel } from './panels.js'

export interface Editor {
  id: string
  el: HTMLElement
  focusTitle: () => void
  destroy: () => void
}

export interface EditorHooks {
  history: (panel: HTMLElement) => void
  share: (projectId: string | null) => void
  closed: () => void
}

const SAVE_TITLE_AFTER = 300 // ms of quiet typing before the title becomes an op
const open = new Set<string>() // notes shown in an editor now
const THEME = EditorView.theme({
  '&': { minHeight: '50vh', fontSize: '16px', lineHeight: '1.6', fontFamily: 'inherit' },
  '&.cm-focused': { outline: 'none' },
  '.cm-scroller': { fontFamily: 'inherit' },
  '.cm-content': { padding: '8px 0' },
  '.cm-placeholder': { color: '#9ca3af' }
})

export async function openEditor (client: SyncClient, id: string, hooks: EditorHooks): Promise<Editor> {
  const doc = await client.doc(id)
  open.add(id)
  const readOnly = await client.role('note', id) === 'viewer'
  let note = await client.note(id) ?? {}
  const error = h('p.error', { role: 'alert' })
  const fail = (e: unknown): void => { error.textContent = explain(e) }

  // the title as stored, and a save waiting for typing to pause: a change from elsewhere
  // replaces the input's text only when nothing typed here is unsaved
  let stored = String(note.title ?? '')
  let titleTimer: number | undefined
  const saveTitle = (): void => {
    clearTimeout(titleTimer)
    titleTimer = undefined
    const value = title.value
    if (value !== stored) void client.updateNote(id, { title: value }).then(() => { stored = value }).catch(fail)
  }
  const title = h('input.note-title', {
    value: stored, placeholder: 'Untitled', 'aria-label': 'Title', disabled: readOnly,
    oninput: () => {
      clearTimeout(titleTimer)
      titleTimer = window.setTimeout(saveTitle, SAVE_TITLE_AFTER)
    }
  })
  const pin = h('button', { 'aria-pressed': String(note.pinned === true), disabled: readOnly, onclick: () => {
    void client.updateNote(id, { pinned: note.pinned !== true }).catch(fail)
  } }, 'Pin')
  const project = h('select', { 'aria-label': 'Project', disabled: readOnly, onchange: () => {
    void client.updateNote(id, { project_id: project.value === '' ? null : project.value }).catch(fail)
  } })
  const fillProjects = async (): Promise<void> => {
    const projects = await client.projects()
    project.replaceChildren(h('option', { value: '' }, 'No project'),
      ...projects.map((p: Json) => h('option', { value: p.id, selected: p.id === note.project_id }, String(p.title ?? '') || 'Untitled project')))
  }
  await fillProjects()
  const remove = h('button.danger', { disabled: readOnly, onclick: () => {
    const deleted = note.deleted === true
    void (deleted ? client.restoreNote(id) : client.deleteNote(id)).then(() => { if (!deleted) hooks.closed() }).catch(fail)
  } }, note.deleted === true ? 'Restore' : 'Delete')

  // CodeMirror's styles go into a shadow root as constructed style sheets: in the
  // document they would be a <style> element, which the page's CSP does not allow
  const host = h('div.body')
  const shadow = host.attachShadow({ mode: 'open' })
  const view = new EditorView({
    root: shadow,
    parent: shadow,
    state: EditorState.create({
      doc: doc.getText(ROOT).toString(),
      extensions: [
        keymap.of(yUndoManagerKeymap),
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({ 'aria-label': 'Note body' }),
        placeholder('Start writing…'),
        THEME,
        EditorState.readOnly.of(readOnly),
        EditorView.editable.of(!readOnly),
        yCollab(doc.getText(ROOT), null)
      ]
    })
  })

  // fields changed elsewhere (another device, another tab) show up here
  const off = client.subscribe(({ ids }) => {
    if (!ids.includes(id)) return
    void client.note(id).then((fresh) => {
      if (fresh === undefined) return
      note = fresh
      const now = String(note.title ?? '')
      if (titleTimer === undefined && title.value === stored) title.value = now
      if (titleTimer === undefined) stored = now
      pin.setAttribute('aria-pressed', String(note.pinned === true))
      remove.textContent = note.deleted === true ? 'Restore' : 'Delete'
      void fillProjects()
    })
  })

  const el = h('article.editor', {},
    h('div.fields', {}, title),
    h('div.toolbar', {},
      project, pin,
      h('button', { onclick: () => { hooks.history(historyPanel(client, id)) } }, 'History'),
      h('button', { onclick: () => { hooks.share(typeof note.project_id === 'string' ? note.project_id : null) } }, 'Share'),
      remove),
    readOnly ? h('p.banner', {}, 'You can read this note; its project is shared with you as a viewer.') : null,
    error,
    host)

  return {
    id,
    el,
    focusTitle: () => title.focus(),
    destroy: () => {
      if (titleTimer !== undefined) saveTitle() // typed just before leaving: saved, not dropped
      off()
      view.destroy()
      open.delete(id)
      // let the document go once its last edits are stored, unless it was opened again
      void client.flush().then(() => { if (!open.has(id)) client.closeDoc(id) })
    }
  }
}
