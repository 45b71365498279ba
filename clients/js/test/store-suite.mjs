// The one test suite every Store passes: SQLite under Node's test runner
// (node/store.test.mjs) and IndexedDB in Chromium (browser/store.html through
// test_js_client.py). Runner-agnostic: each case gets a fresh store and throws on failure.

function eq (actual, expected, what = '') {
  const a = JSON.stringify(actual)
  const e = JSON.stringify(expected)
  if (a !== e) throw new Error(`${what} expected ${e}, got ${a}`)
}

function row (id, fields = {}, extra = {}) {
  return { entity: 'note', id, fields, clocks: {}, body: '', bodyState: null, derived: {}, ...extra }
}

function op (id, title) {
  return { hlc: `1763700000000.000000.dev`, entity: 'note', id, kind: 'set', fields: { title } }
}

export const cases = {
  async 'meta is set, read and removed' (store) {
    eq(await store.getMeta('cursor'), undefined)
    await store.commit({ meta: { cursor: 42, access_token: 'a.b.c' } })
    eq(await store.getMeta('cursor'), '42')
    eq(await store.getMeta('access_token'), 'a.b.c')
    eq(await store.getMetas(['cursor', 'missing', 'access_token']), { cursor: '42', missing: undefined, access_token: 'a.b.c' })
    await store.commit({ meta: { access_token: null } })
    eq(await store.getMeta('access_token'), undefined)
  },

  async 'rows keep fields, clocks, body and document bytes' (store) {
    const state = new Uint8Array([1, 0, 255, 7, 128])
    await store.commit({ rows: [
      row('n1', { title: 'one', tags: ['a'], pinned: true, deleted: false }, { clocks: { title: 'h1' }, body: 'héllo', bodyState: state, derived: { word_count: 1 } }),
      { ...row('p1', { title: 'proj' }), entity: 'project' }
    ] })
    const got = await store.row('note', 'n1')
    eq([got.fields, got.clocks, got.body, got.derived], [{ title: 'one', tags: ['a'], pinned: true, deleted: false }, { title: 'h1' }, 'héllo', { word_count: 1 }])
    eq(Array.from(got.bodyState), [1, 0, 255, 7, 128], 'state')
    eq((await store.row('project', 'p1')).fields.title, 'proj')
    eq(await store.row('project', 'n1'), undefined, 'entities are apart')
    eq((await store.rows('note', ['n1', 'missing'])).map((r) => r.id), ['n1'])
    eq((await store.rows('note')).length, 1)
    await store.commit({ drop: [{ entity: 'note', id: 'n1' }] })
    eq(await store.row('note', 'n1'), undefined)
  },

  async 'settings and meta fields are kept with their clocks' (store) {
    const settings = { entity: 'settings', id: 'u1', fields: { theme: 'dark', notify: { mentions: true }, font: null }, clocks: { theme: 'h1', notify: 'h2', font: 'h3' }, body: '', bodyState: null, derived: {} }
    await store.commit({ rows: [
      settings,
      row('n1', { title: 'a', 'meta.color': 'red', 'meta.old': null }, { clocks: { 'meta.color': 'h4', 'meta.old': 'h5' } }),
      { ...row('p1', { status: 'paused', deadline: '2027-01-31', 'meta.client': { name: 'Acme' } }), entity: 'project' }
    ] })
    const got = await store.row('settings', 'u1')
    eq([got.entity, got.fields, got.clocks], ['settings', settings.fields, settings.clocks])
    eq((await store.rows('settings')).map((r) => r.id), ['u1'])
    eq(await store.row('note', 'u1'), undefined, 'settings are apart')
    const note = await store.row('note', 'n1')
    eq([note.fields['meta.color'], note.fields['meta.old'], note.clocks['meta.old']], ['red', null, 'h5'])
    eq((await store.row('project', 'p1')).fields, { status: 'paused', deadline: '2027-01-31', 'meta.client': { name: 'Acme' } })
    await store.wipe()
    eq(await store.row('settings', 'u1'), undefined, 'wiped')
  },

  async 'a row saved without its document keeps the stored one' (store) {
    await store.commit({ rows: [row('n1', { title: 'a' }, { bodyState: new Uint8Array([9, 9]) })] })
    const [listed] = await store.queryNotes({})
    await store.commit({ rows: [{ ...listed, bodyState: null, fields: { title: 'b' } }] })
    const got = await store.row('note', 'n1')
    eq([got.fields.title, Array.from(got.bodyState)], ['b', [9, 9]])
  },

  async 'many new notes written at once keep their documents, however they are read and saved again' (store) {
    const state = (i) => new Uint8Array([i % 256, Math.floor(i / 256), 7])
    const n = 300
    await store.commit({ rows: Array.from({ length: n }, (_, i) => row(`n${i}`, { title: `t${i}` }, { bodyState: state(i) })) })
    // a second bulk write of other new notes leaves the first one's states as they are
    await store.commit({ rows: Array.from({ length: 50 }, (_, i) => row(`m${i}`, {}, { bodyState: state(1000 + i) })) })
    const bytes = (r) => r.bodyState === null ? null : Array.from(r.bodyState)
    const all = await store.rows('note')
    eq(all.length, n + 50)
    for (const r of all) {
      const i = r.id.startsWith('m') ? 1000 + Number(r.id.slice(1)) : Number(r.id.slice(1))
      eq(bytes(r), Array.from(state(i)), r.id)
    }
    const byId = async (ids, withState = true) => (await store.rows('note', ids, withState)).sort((a, b) => ids.indexOf(a.id) - ids.indexOf(b.id))
    eq((await byId(['n5', 'n299', 'm3'])).map(bytes), [state(5), state(299), state(1003)].map((s) => Array.from(s)))
    eq(bytes(await store.row('note', 'n7')), Array.from(state(7)))
    eq((await store.rows('note', ['n5'], false)).map(bytes), [null], 'without state')
    // saved again without the state: from a query, from a read without state, and as
    // a row that was never read from the store
    const [listed] = (await store.queryNotes({})).filter((r) => r.id === 'n1')
    const [plain] = await store.rows('note', ['n2'], false)
    await store.commit({ rows: [{ ...listed, fields: { title: 'b' } }, { ...plain, fields: { title: 'c' } }, row('n3', { title: 'd' })] })
    eq((await byId(['n1', 'n2', 'n3'])).map((r) => [r.fields.title, bytes(r)]),
      [['b', [1, 0, 7]], ['c', [2, 0, 7]], ['d', [3, 0, 7]]])
    // a new state replaces the first one, and stays when saved again without it
    const [n4] = await store.rows('note', ['n4'])
    await store.commit({ rows: [{ ...n4, bodyState: new Uint8Array([42]) }] })
    const [again] = await store.rows('note', ['n4'], false)
    await store.commit({ rows: [{ ...again, fields: { title: 'e' } }] })
    eq([bytes(await store.row('note', 'n4')), bytes(await store.row('note', 'n6'))], [[42], Array.from(state(6))])
    await store.commit({ drop: [{ entity: 'note', id: 'n6' }] })
    eq(await store.row('note', 'n6'), undefined)
    // the same id new again without a state: no state, not the dropped note's
    await store.commit({ rows: [row('n6', { title: 'new' })] })
    eq(bytes(await store.row('note', 'n6')), null)
    await store.wipe()
    eq((await store.rows('note')).length, 0)
  },

  async 'commits called without waiting apply in the order called' (store) {
    const writes = [1, 2, 3].map((v) => store.commit({ rows: [row('n', { title: String(v) })], meta: { last: v } }, { durable: v === 3 }))
    await Promise.all(writes)
    eq([(await store.row('note', 'n')).fields.title, await store.getMeta('last')], ['3', '3'])
  },

  async 'queued ops are numbered contiguously across commits' (store) {
    eq(await store.commit({ enqueue: [op('a', '1'), op('a', '2')] }), [1, 2])
    eq(await store.commit({ enqueue: [op('b', '3')] }), [3])
    eq(await store.outboxSize(), 3)
    eq((await store.pending(2)).map((o) => [o.client_seq, o.fields.title]), [[1, '1'], [2, '2']])
    await store.commit({ dropOps: [2], dropOpsBelow: 2 })
    eq((await store.pending(10)).map((o) => o.client_seq), [3])
    eq(await store.commit({ enqueue: [op('c', '4')] }), [4], 'never reused')
    eq((await store.pending(1, 3)).map((o) => o.client_seq), [4], 'the batch after one in flight')
    eq((await store.pending(10, 4)).map((o) => o.client_seq), [])
  },

  async 'consumed ops leave before new ones are numbered in the same commit' (store) {
    await store.commit({ enqueue: [op('a', '1'), op('a', '2')] })
    eq(await store.commit({ dropOpsBelow: Number.MAX_SAFE_INTEGER, meta: { next_seq: 1 }, enqueue: [op('a', 'x'), op('a', 'y')] }), [1, 2])
    eq((await store.pending(10)).map((o) => o.fields.title), ['x', 'y'])
  },

  async 'renumber keeps the order' (store) {
    await store.commit({ meta: { next_seq: 10 }, enqueue: [op('a', 'a'), op('a', 'b')] })
    await store.renumber(4)
    eq((await store.pending(10)).map((o) => [o.client_seq, o.fields.title]), [[4, 'a'], [5, 'b']])
    eq(await store.commit({ enqueue: [op('a', 'c')] }), [6])
  },

  async 'sent entries are kept and forgotten' (store) {
    const s = (n) => ({ client_seq: n, entity: 'note', id: 'x', hlc: `h${n}` })
    await store.commit({ sent: [s(1), s(2), s(3), s(4)] })
    eq((await store.sent([2, 9])).map((x) => x.hlc), ['h2'])
    await store.commit({ unsent: [1], unsentFrom: 3 })
    eq((await store.sent([1, 2, 3, 4])).map((x) => x.client_seq), [2])
  },

  async 'notes are queried by project, pinned, tag and deleted' (store) {
    await store.commit({ rows: [
      row('a', { project_id: 'p', pinned: true, tags: ['x', 'y'], deleted: false }),
      row('b', { project_id: null, pinned: false, tags: ['y'], deleted: false }),
      row('c', { project_id: 'p', pinned: false, tags: [], deleted: true }),
      row('d', { project_id: null, pinned: true, tags: ['x'], deleted: true })
    ] })
    const ids = async (f) => (await store.queryNotes(f)).map((r) => r.id).sort()
    eq(await ids({}), ['a', 'b'])
    eq(await ids({ deleted: true }), ['c', 'd'])
    eq(await ids({ deleted: null }), ['a', 'b', 'c', 'd'])
    eq(await ids({ projectId: 'p' }), ['a'])
    eq(await ids({ projectId: 'p', deleted: null }), ['a', 'c'])
    eq(await ids({ projectId: null }), ['b'])
    eq(await ids({ projectId: null, deleted: true }), ['d'])
    eq(await ids({ pinned: true }), ['a'])
    eq(await ids({ pinned: true, deleted: null }), ['a', 'd'])
    eq(await ids({ pinned: false }), ['b'])
    eq(await ids({ pinned: false, deleted: true }), ['c'])
    eq(await ids({ tag: 'y' }), ['a', 'b'])
    eq(await ids({ tag: 'x', deleted: null }), ['a', 'd'])
    eq(await ids({ tag: 'y', pinned: false }), ['b'])
    // a note leaving a project, unpinned, restored: found as such, no longer as before
    await store.commit({ rows: [row('d', { project_id: null, pinned: false, tags: [], deleted: false })] })
    eq(await ids({ pinned: true, deleted: null }), ['a'])
    eq(await ids({ tag: 'x', deleted: null }), ['a'])
    eq(await ids({ pinned: false }), ['b', 'd'])
  },

  async 'rejections and notifications are kept in order' (store) {
    await store.commit({
      rejections: [{ client_seq: 5, entity: 'note', id: 'x', kind: 'set', code: 'validation', message: 'too long', op: { title: 't' } }],
      notifications: [{ seq: 9, kind: 'conflict', entity: 'note', id: 'x' }, { seq: 3, kind: 'milestone', entity: 'project', id: 'p' }]
    })
    eq((await store.rejections()).map((r) => [r.client_seq, r.code, r.op.title]), [[5, 'validation', 't']])
    eq((await store.notifications()).map((n) => n.seq), [3, 9])
    eq((await store.notifications('conflict')).map((n) => n.seq), [9])
  },

  async 'update reads, asks for more rows, and writes in one step; a thrown error writes nothing' (store) {
    await store.commit({ meta: { cursor: 7 }, rows: [row('n1', { title: 'a', project_id: 'p1' }, { bodyState: new Uint8Array([5]) }), { ...row('p1', { title: 'P' }), entity: 'project' }] })
    const seen = []
    const seqs = await store.update(['cursor', 'missing'], [{ entity: 'note', id: 'n1' }, { entity: 'note', id: 'none' }], (rows, meta) => {
      seen.push([...rows.keys()].sort())
      const note = rows.get('note:n1')
      if (!rows.has('project:p1')) return { read: [{ entity: 'project', id: note.fields.project_id }] }
      eq([meta.cursor, meta.missing, rows.get('note:none'), rows.get('project:p1').fields.title, note.bodyState], ['7', undefined, undefined, 'P', null])
      return { changes: { rows: [{ ...note, fields: { ...note.fields, title: 'b' } }], enqueue: [op('n1', 'b')], meta: { cursor: 8 } } }
    })
    eq(seen, [['note:n1', 'note:none'], ['note:n1', 'note:none', 'project:p1']])
    eq(seqs, [1])
    const got = await store.row('note', 'n1')
    eq([got.fields.title, Array.from(got.bodyState), await store.getMeta('cursor')], ['b', [5], '8'], 'the document is kept')
    let thrown
    try {
      await store.update([], [{ entity: 'note', id: 'n1' }], () => { throw new RangeError('no') })
    } catch (e) {
      thrown = e
    }
    eq(thrown instanceof RangeError, true, 'the decision\'s own error')
    eq([await store.outboxSize(), (await store.row('note', 'n1')).fields.title], [1, 'b'])
  },

  async 'many notes written, rewritten and dropped together keep each other' (store) {
    const n = 1000
    await store.commit({ rows: Array.from({ length: n }, (_, i) => row(`n${i}`, { title: `a${i}` }, { bodyState: new Uint8Array([i % 256]) })) })
    // one commit renames the even notes and drops every fourth odd one: notes that share
    // a record in a store keeping many together must not undo each other
    const listed = await store.rows('note', Array.from({ length: n }, (_, i) => `n${i}`).filter((_, i) => i % 2 === 0), false)
    await store.commit({
      rows: listed.map((r) => ({ ...r, fields: { title: `b${r.id.slice(1)}` } })),
      drop: Array.from({ length: n }, (_, i) => i).filter((i) => i % 4 === 1).map((i) => ({ entity: 'note', id: `n${i}` }))
    })
    // a local edit of one note leaves the notes beside it as they are (n3 and n362 share
    // a record in the IndexedDB store), even one its decision changed without writing it
    await store.update([], [{ entity: 'note', id: 'n3' }, { entity: 'note', id: 'n362' }], (rows) => {
      const n3 = rows.get('note:n3')
      rows.get('note:n362').fields.title = 'not written'
      return { changes: { rows: [{ ...n3, fields: { title: 'c3' } }] } }
    })
    const want = (i) => i % 4 === 1 ? undefined : i === 3 ? 'c3' : i % 2 === 0 ? `b${i}` : `a${i}`
    const all = new Map((await store.rows('note')).map((r) => [r.id, r]))
    eq(all.size, n - n / 4)
    const some = Array.from({ length: 40 }, (_, i) => `n${i}`)
    const byId = new Map((await store.rows('note', some)).map((r) => [r.id, r]))
    for (let i = 0; i < n; i++) {
      const r = all.get(`n${i}`)
      eq(r?.fields.title, want(i), `n${i}`)
      if (r !== undefined) eq(Array.from(r.bodyState), [i % 256], `n${i}'s state`)
      if (i < 40) eq(byId.get(`n${i}`)?.fields.title, want(i), `n${i} by id`)
    }
    eq((await store.queryNotes({})).length, n - n / 4)
  },

  async 'a commit is all or nothing' (store) {
    let failed = false
    try {
      await store.commit({ meta: { cursor: 5 }, enqueue: [op('a', 'x')], rows: [{ ...row('z'), entity: 'bogus' }] })
    } catch {
      failed = true
    }
    eq(failed, true, 'the bad commit throws')
    eq([await store.getMeta('cursor'), await store.outboxSize()], [undefined, 0])
  },

  async 'wipe drops data and keeps meta' (store) {
    await store.commit({ meta: { device_id: 'd' }, rows: [row('a')], enqueue: [op('a', 'x')] })
    await store.wipe()
    eq([await store.getMeta('device_id'), (await store.rows('note')).length, await store.outboxSize()], ['d', 0, 0])
  },

  async 'exclusive sections do not interleave' (store) {
    const bump = () => store.exclusive(async () => {
      const n = Number(await store.getMeta('n') ?? 0)
      await new Promise((resolve) => setTimeout(resolve, 1))
      await store.commit({ meta: { n: n + 1 } })
    })
    await Promise.all(Array.from({ length: 10 }, bump))
    eq(await store.getMeta('n'), '10')
  }
}
