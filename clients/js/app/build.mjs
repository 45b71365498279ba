// The web app's build: type-checked by `tsc -p app` first (npm run build:app), then one
// minified bundle (the SDK from source, yjs, CodeMirror) and its static files, written
// into the server package (syncd/webapp/), which `syncd serve` mounts at /app/.
import { build } from 'esbuild'
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'

const here = new URL('.', import.meta.url)
const out = new URL('../../../syncd/webapp/', import.meta.url).pathname
mkdirSync(out, { recursive: true })
await build({
  entryPoints: [new URL('main.ts', here).pathname],
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  outfile: out + 'app.js',
  logLevel: 'warning'
})
for (const name of ['index.html', 'app.css', 'icon.svg', 'sw.js']) copyFileSync(new URL(name, here), out + name)
const bytes = readFileSync(out + 'app.js')
console.log(`web app: ${bytes.length} bytes, ${gzipSync(bytes).length} gzipped`)
