// Updates made by stock Yjs, for the update decoder's tests: prints a JSON list of
// {name, update (base64), roots, nested, nul}, what syncd/yupdate.py must read in each.
import * as Y from 'yjs'

const cases = []
const doc = new Y.Doc()
const body = doc.getText('body')
body.insert(0, 'hello world')

function add (name, expect, change) {
  const before = Y.encodeStateVector(doc)
  doc.transact(() => change())
  const update = Y.encodeStateAsUpdate(doc, before)
  cases.push({ name, update: Buffer.from(update).toString('base64'), ...expect })
}

const plain = { roots: [], nested: false, nul: false }
cases.push({ name: 'whole state', update: Buffer.from(Y.encodeStateAsUpdate(doc)).toString('base64'),
  roots: ['body'], nested: false, nul: false })
add('insert', plain, () => body.insert(5, ','))
add('delete', plain, () => body.delete(0, 3))
add('format', plain, () => body.format(0, 4, { bold: true }))
add('insert formatted', plain, () => body.insert(2, 'X', { italic: true, size: 3 }))
add('embed', plain, () => body.insertEmbed(1, { image: 'a.png', w: 1.5 }))
add('emoji', plain, () => body.insert(0, '😀 é'))
add('NUL', { ...plain, nul: true }, () => body.insert(3, 'a\u0000b'))
add('attribute', { ...plain, roots: ['body'] }, () => body.setAttribute('lang', { v: [1, null, true, 'x', new Uint8Array([0, 1])] }))
add('another text root', { ...plain, roots: ['title'] }, () => doc.getText('title').insert(0, 't'))
add('a map root', { ...plain, roots: ['meta'] }, () => doc.getMap('meta').set('k', 2n ** 40n))
add('an array root', { ...plain, roots: ['list'] }, () => doc.getArray('list').push([1, 'two', { three: 3 }]))
add('a nested map', { ...plain, roots: ['meta'], nested: true }, () => doc.getMap('meta').set('inner', new Y.Map()))
add('in a nested map', { ...plain, nested: true }, () => doc.getMap('meta').get('inner').set('a', 1))
add('xml', { ...plain, roots: ['prosemirror'], nested: true }, () => {
  const p = new Y.XmlElement('p')
  p.insert(0, [new Y.XmlText('hi')])
  doc.getXmlFragment('prosemirror').insert(0, [p])
})
add('a subdocument', { ...plain, roots: ['docs'], nested: true }, () => doc.getMap('docs').set('sub', new Y.Doc()))
add('a nested type in the body', { ...plain, nested: true }, () => body.insertEmbed(0, new Y.Map()))
add('binary and JSON values', { ...plain, roots: ['bin'] }, () => doc.getMap('bin').set('b', new Uint8Array([0, 0, 7])))

process.stdout.write(JSON.stringify(cases))
