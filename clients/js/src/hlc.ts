/**
 * The device's hybrid logical clock (docs/protocol.md, Clocks).
 *
 * An HLC is written `<wall ms, 13 digits>.<counter, 6 digits>.<device_id>`, so string
 * comparison is clock order and at equal wall time and counter the greater device id
 * wins. `tick()` stamps a local op; `observe()` folds in a remote clock so the next
 * local stamp is greater than anything seen.
 */

const HLC = /^(\d{13})\.(\d{6})\.(.+)$/
export const MAX_COUNTER = 999_999

export interface Hlc { wall: number, counter: number, node: string }

export function formatHlc (wall: number, counter: number, node: string): string {
  return `${String(wall).padStart(13, '0')}.${String(counter).padStart(6, '0')}.${node}`
}

/** Parse the wire form; throw a RangeError for anything else. */
export function parseHlc (value: string): Hlc {
  const m = HLC.exec(value)
  if (m === null) throw new RangeError(`malformed hlc: ${JSON.stringify(value)}`)
  return { wall: Number(m[1]), counter: Number(m[2]), node: m[3] as string }
}

export class Clock {
  node: string
  private wall = 0
  private counter = 0

  constructor (node: string, last?: string | null, private readonly now: () => number = Date.now) {
    this.node = node
    if (last) this.observe(last)
  }

  /** The greatest clock issued or observed so far (persisted between runs). */
  get last (): string {
    return formatHlc(this.wall, this.counter, this.node)
  }

  /** A new clock value, greater than every value issued or observed before. */
  tick (): string {
    const now = this.now()
    if (now > this.wall) {
      this.wall = now
      this.counter = 0
    } else if (this.counter < MAX_COUNTER) {
      this.counter += 1
    } else {
      // the counter is exhausted within one millisecond: borrow the next one
      this.wall += 1
      this.counter = 0
    }
    return this.last
  }

  /** Advance past a clock seen elsewhere (no-op if it is older or malformed). */
  observe (remote: string): void {
    let r: Hlc
    try {
      r = parseHlc(remote)
    } catch {
      return
    }
    if (r.wall > this.wall || (r.wall === this.wall && r.counter > this.counter)) {
      this.wall = r.wall
      this.counter = r.counter
    }
  }
}
