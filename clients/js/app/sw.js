// The app's service worker: its files offline. Network first, so a new build is used as
// soon as the server has it; when the network fails, the copy kept from the last visit,
// so the app opens (and its notes, which live in IndexedDB) without a server.
const CACHE = 'syncd-app'
const SCOPE = new URL('./', self.location.href).pathname

self.addEventListener('install', (event) => {
  self.skipWaiting()
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(['./', 'app.js', 'app.css', 'icon.svg'])))
})

self.addEventListener('activate', (event) => { event.waitUntil(self.clients.claim()) })

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url)
  // the app's own files only: API calls go to the network, as the SDK expects
  if (event.request.method !== 'GET' || url.origin !== self.location.origin || !url.pathname.startsWith(SCOPE)) return
  event.respondWith(fetch(event.request).then(async (response) => {
    if (response.ok) await (await caches.open(CACHE)).put(event.request, response.clone())
    return response
  }).catch(async () => await caches.match(event.request) ?? Response.error()))
})
