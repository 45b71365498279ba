/**
 * Note bodies as Yjs documents: the root `Y.Text` is named `body` (docs/protocol.md).
 * Helpers to load a stored state, merge a remote update into a stored state, and turn
 * a body into a new text by one minimal edit.
 */
import * as Y from 'yjs'

export const ROOT = 'body'

/** Updates applied with this origin came from the log, not from the user. */
export const REMOTE = Symbol('syncd-remote')

export function newDoc (state?: Uint8Array | null): Y.Doc {
  const doc = new Y.Doc()
  doc.getText(ROOT)
  if (state && state.length > 0) Y.applyUpdate(doc, state, REMOTE)
  return doc
}

export function textOf (doc: Y.Doc): string {
  return doc.getText(ROOT).toString()
}

/** Lengths of the common prefix and of the common suffix (never overlapping). */
export function commonAffixes (old: string, next: string): [number, number] {
  const limit = Math.min(old.length, next.length)
  let p = 0
  while (p < limit && old.charCodeAt(p) === next.charCodeAt(p)) p++
  let s = 0
  while (s < limit - p && old.charCodeAt(old.length - 1 - s) === next.charCodeAt(next.length - 1 - s)) s++
  return [p, s]
}

/** Make the body `next` with one deletion and one insertion, in one transaction. */
export function replaceText (doc: Y.Doc, next: string, origin: unknown = null): void {
  const text = doc.getText(ROOT)
  const old = text.toString()
  if (old === next) return
  const [p, s] = commonAffixes(old, next)
  doc.transact(() => {
    if (old.length - s > p) text.delete(p, old.length - s - p)
    if (next.length - s > p) text.insert(p, next.slice(p, next.length - s))
  }, origin)
}

/**
 * Merge `update` into a stored state without keeping a document around; return the
 * new state and text, or null if the update changed nothing. Throws if it does not parse.
 */
export function mergeInto (state: Uint8Array | null, update: Uint8Array): { state: Uint8Array, text: string } | null {
  const doc = newDoc(state)
  try {
    let changed = false
    doc.on('update', () => { changed = true })
    Y.applyUpdate(doc, update, REMOTE)
    // an update whose dependencies are missing waits inside the document (and is encoded
    // with its state) without firing 'update'
    if (!changed && doc.store.pendingStructs === null && doc.store.pendingDs === null) return null
    return { state: Y.encodeStateAsUpdate(doc), text: textOf(doc) }
  } finally {
    doc.destroy()
  }
}
