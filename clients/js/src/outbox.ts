/**
 * The queue of ops this device made that the server has not consumed yet.
 *
 * Ops are numbered 1, 2, 3... by the store in the transaction that queues them, and
 * keep their number when a push is retried, so a push whose response was lost comes
 * back as `duplicate` and is dropped (its effect is already local). The only
 * renumbering is on `client_seq_gap` when the server expects a number *below* the head
 * of the queue (it never saw those numbers: a store restored from an old copy).
 * Transport-free: HTTP push and the sync socket both use it. Callers hold the store's
 * exclusive lock.
 */
import { rewriteClock } from './merge.js'
import type { Changes, EntityName, Op, PushResponse, Rejection, Row, Sent, Store } from './types.js'

export const MAX_BATCH = 1000
/** The server takes at most 8 MiB of request body; stay well under it. */
export const MAX_BATCH_BYTES = 4 * 1024 * 1024

export class Outbox {
  constructor (private readonly store: Store) {}

  /**
   * The next ops to push (those numbered above `after`: the batch after one in flight).
   * They stay queued until a response consumes them; if it is lost, their own events (or
   * a retry's `duplicate`) tell what became of them.
   */
  async nextBatch (limit = MAX_BATCH, after = 0): Promise<Op[]> {
    const ops = await this.store.pending(Math.min(limit, MAX_BATCH), after)
    let bytes = 0
    let count = 0
    for (const op of ops) {
      bytes += (op.update?.length ?? 0) + JSON.stringify(op.fields ?? {}).length + 200
      if (count > 0 && bytes > MAX_BATCH_BYTES) break
      count++
    }
    return ops.slice(0, count)
  }

  /** Consume the results of a push of `ops` (HTTP response or socket `ack`). */
  async onResponse (ops: Op[], resp: PushResponse): Promise<Rejection[]> {
    const bySeq = new Map(ops.map((op) => [op.client_seq, op]))
    const done: number[] = []
    const sent: Sent[] = []
    const rejections: Rejection[] = []
    const adopt: Array<{ entity: EntityName, id: string, old: string, replacement: string }> = []
    for (const res of resp.results) {
      const op = bySeq.get(res.client_seq)
      if (op === undefined) continue
      done.push(res.client_seq)
      if (res.status === 'applied') {
        if (res.hlc && res.hlc !== op.hlc) adopt.push({ entity: op.entity, id: op.id, old: op.hlc, replacement: res.hlc })
      } else if (res.status === 'rejected') {
        const { client_seq: _seq, ...body } = op
        rejections.push({
          client_seq: op.client_seq, entity: op.entity, id: op.id, kind: op.kind,
          code: res.code ?? 'rejected', message: res.message ?? '', op: body
        })
        // the server kept nothing of this op: any remote write must win over the
        // local value it left behind
        adopt.push({ entity: op.entity, id: op.id, old: op.hlc, replacement: '' })
      } else {
        // duplicate: consumed by an earlier push whose response was lost; remember its
        // first clock so that its pulled event can still canonicalise it
        sent.push({ client_seq: op.client_seq, entity: op.entity, id: op.id, hlc: op.hlc })
      }
    }
    const rows = await this.adoptClocks(adopt)
    const meta = await this.store.getMetas(['acked', 'next_seq'])
    const acked = Math.max(resp.acked, Number(meta.acked ?? 0))
    const nextSeq = Number(meta.next_seq ?? 1)
    const changes: Changes = {
      rows,
      // those at or below `acked` go by one range delete below
      dropOps: done.filter((seq) => seq > resp.acked),
      // everything up to `acked` is consumed, whether or not a result named it
      dropOpsBelow: resp.acked + 1,
      sent,
      rejections,
      meta: { acked, ...(nextSeq <= resp.acked ? { next_seq: resp.acked + 1 } : {}) }
    }
    await this.store.commit(changes)
    return rejections
  }

  /** Recover from `client_seq_gap {expected}` before pushing again. */
  async onGap (expected: number): Promise<void> {
    await this.store.commit({ dropOpsBelow: expected, unsentFrom: expected, meta: { acked: expected - 1 } })
    const [head] = await this.store.pending(1)
    if (head === undefined) {
      await this.store.commit({ meta: { next_seq: expected } })
    } else if (head.client_seq !== expected) {
      await this.store.renumber(expected)
    }
  }

  private async adoptClocks (adopt: Array<{ entity: EntityName, id: string, old: string, replacement: string }>): Promise<Row[]> {
    // the rows in one read per entity, without their documents (a clock is all that
    // changes, and a row saved without its state leaves the stored one as it is): a
    // skewed device has every op of a batch re-clocked, and one read each cost a
    // store transaction per op
    const rows = new Map<string, Row>()
    for (const entity of new Set(adopt.map((a) => a.entity))) {
      const ids = [...new Set(adopt.filter((a) => a.entity === entity).map((a) => a.id))]
      for (const row of await this.store.rows(entity, ids, false)) rows.set(`${entity}:${row.id}`, row)
    }
    const changed = new Map<string, Row>()
    for (const a of adopt) {
      const key = `${a.entity}:${a.id}`
      const row = rows.get(key)
      if (row !== undefined && rewriteClock(row, a.old, a.replacement)) changed.set(key, row)
    }
    return [...changed.values()]
  }
}
