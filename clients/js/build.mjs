// After tsc: one minified browser bundle of the SDK (yjs left external, the app brings
// it) and its gzipped size, the figure the SDK's size budget is measured by.
import { build } from 'esbuild'
import { gzipSync } from 'node:zlib'
import { readFileSync } from 'node:fs'

const out = 'dist/browser/syncd-client.min.js'
await build({
  entryPoints: ['src/index.ts'],
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  external: ['yjs'],
  outfile: out,
  logLevel: 'warning'
})
const bytes = readFileSync(out)
console.log(`${out}: ${bytes.length} bytes, ${gzipSync(bytes).length} bytes gzipped (yjs excluded)`)
