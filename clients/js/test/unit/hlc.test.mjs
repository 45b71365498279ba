// The hybrid logical clock: wire format, monotonicity, observing remote clocks
// (the same cases as the Python SDK's tests/test_hlc.py).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Clock, formatHlc, parseHlc } from '../../dist/index.js'

const NODE = '0f000000-0000-4000-8000-00000000000d'

test('format and parse round trip', () => {
  const value = formatHlc(1763700000123, 2, NODE)
  assert.equal(value, `1763700000123.000002.${NODE}`)
  assert.deepEqual(parseHlc(value), { wall: 1763700000123, counter: 2, node: NODE })
  assert.throws(() => parseHlc('123.1.x'), RangeError)
})

test('string order is clock order', () => {
  const values = [[1, 5, 'b'], [2, 0, 'a'], [2, 1, 'a'], [2, 1, 'b'], [1763700000000, 0, 'a']]
    .map(([w, c, n]) => formatHlc(w, c, n))
  assert.deepEqual([...values].sort(), values)
})

test('tick is strictly increasing when the wall clock stalls or goes back', () => {
  const walls = [1000, 1000, 1000, 999, 2000]
  const clock = new Clock(NODE, null, () => walls.shift())
  const stamps = Array.from({ length: 5 }, () => clock.tick())
  assert.deepEqual([...stamps].sort(), stamps)
  assert.equal(new Set(stamps).size, 5)
  assert.deepEqual(parseHlc(stamps[3]), { wall: 1000, counter: 3, node: NODE })
  assert.deepEqual(parseHlc(stamps[4]), { wall: 2000, counter: 0, node: NODE })
})

test('counter overflow borrows the next millisecond', () => {
  const clock = new Clock(NODE, formatHlc(1000, 999_999, NODE), () => 1000)
  assert.deepEqual(parseHlc(clock.tick()), { wall: 1001, counter: 0, node: NODE })
})

test('observe moves past a remote clock, and an older one changes nothing', () => {
  const clock = new Clock(NODE, null, () => 1000)
  const remote = formatHlc(5000, 7, 'ffff')
  clock.observe(remote)
  assert.ok(clock.tick() > remote)
  clock.observe(formatHlc(10, 0, 'a'))
  const { wall, counter } = parseHlc(clock.last)
  assert.deepEqual([wall, counter], [5000, 8])
})

test('the last clock survives a restart', () => {
  const clock = new Clock(NODE, null, () => 1000)
  clock.tick()
  clock.tick()
  const again = new Clock(NODE, clock.last, () => 1000)
  assert.ok(again.tick() > clock.last)
})
