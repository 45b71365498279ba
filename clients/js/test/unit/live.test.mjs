// Reconnect backoff: full jitter under an exponential ceiling with a cap.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { backoff } from '../../dist/index.js'

test('backoff is uniform below min(cap, base * 2**attempt)', () => {
  assert.equal(backoff(0, 500, 30000, () => 1), 500)
  assert.equal(backoff(3, 500, 30000, () => 1), 4000)
  assert.equal(backoff(12, 500, 30000, () => 1), 30000, 'capped')
  assert.equal(backoff(1000, 500, 30000, () => 1), 30000, 'no overflow')
  assert.equal(backoff(5, 500, 30000, () => 0), 0)
  assert.equal(backoff(2, 500, 30000, () => 0.5), 1000)
})
