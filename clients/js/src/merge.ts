/**
 * Pure merge rules: last-writer-wins per field, ordered by HLC strings.
 *
 * A field takes an incoming value only if the incoming clock is strictly greater than
 * the clock it has; equal clocks are the same write seen twice. `deleted` is an
 * ordinary LWW field. No I/O: `projection.ts` drives these.
 */
import type { Json, Row } from './types.js'

/** Apply a `set` of `fields` stamped `hlc`; return the names of the fields that changed. */
export function setFields (row: Row, fields: Json, hlc: string): string[] {
  const clocks: Record<string, string> = {}
  for (const name of Object.keys(fields)) clocks[name] = hlc
  return setClocked(row, fields, clocks)
}

/** Apply fields that each carry their own clock (a `put` or a snapshot entity). */
export function setClocked (row: Row, fields: Json, clocks: Record<string, string>): string[] {
  const changed: string[] = []
  for (const [name, value] of Object.entries(fields)) {
    const clock = clocks[name]
    if (clock === undefined) continue
    if (clock > (row.clocks[name] ?? '')) {
      row.clocks[name] = clock
      if (!(name in row.fields) || !sameValue(row.fields[name], value)) changed.push(name)
      row.fields[name] = value
    }
  }
  return changed
}

/** Replace clock `old` by its canonical form `replacement` wherever a field still carries it. */
export function rewriteClock (row: Row, old: string, replacement: string): boolean {
  let hit = false
  for (const [name, clock] of Object.entries(row.clocks)) {
    if (clock === old) {
      row.clocks[name] = replacement
      hit = true
    }
  }
  return hit
}

/** Structural equality of JSON values (field values are JSON). */
export function sameValue (a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  return JSON.stringify(a) === JSON.stringify(b)
}
