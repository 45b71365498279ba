/** A small DOM builder: `h('button.primary', { onclick }, 'Save')`. No innerHTML anywhere. */
import { NetworkError } from '../src/index.js'

type Child = Node | string | null | undefined | false
type Props = Record<string, unknown>

export function h<K extends keyof HTMLElementTagNameMap> (
  spec: K | `${K}.${string}`, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const [tag, ...classes] = spec.split('.') as [K, ...string[]]
  const el = document.createElement(tag)
  if (classes.length > 0) el.className = classes.join(' ')
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value as EventListener)
    } else if (key in el && !key.startsWith('aria') && key !== 'role') {
      (el as unknown as Record<string, unknown>)[key] = value
    } else {
      el.setAttribute(key, value === true ? '' : String(value))
    }
  }
  el.append(...children.filter((c): c is Node | string => c !== null && c !== undefined && c !== false))
  return el
}

/** Replace everything inside `el`. */
export function fill (el: Element, ...children: Child[]): void {
  el.replaceChildren(...children.filter((c): c is Node | string => c !== null && c !== undefined && c !== false))
}

/** A short human time: "14:05" today, else "3 Dec 14:05". */
export function when (iso: string | number | Date): string {
  const d = new Date(iso)
  const today = new Date().toDateString() === d.toDateString()
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
  return today ? time : `${d.toLocaleDateString([], { day: 'numeric', month: 'short' })} ${time}`
}

/** The message to show for a failed call: offline, or the server's machine code. */
export function explain (e: unknown): string {
  if (e instanceof NetworkError) return 'You are offline: this needs the server.'
  return e instanceof Error ? e.message : String(e)
}
