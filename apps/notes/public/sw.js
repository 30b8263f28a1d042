// The app shell, kept so that the notes open even when the server that serves the app (the
// relay) is down: pages are fetched from the network first and from this cache when that
// fails; the build's hashed files never change, so they are served from the cache first.
// Notes themselves live in IndexedDB, not here.

const CACHE = 'chorus-notes-shell-v2'
const SHELL = new URL('./', self.registration.scope).href
const ASSETS = new URL('./assets/', self.registration.scope).href

/**
 * Whether `url` is a page of this app: its shell (routes are in the hash). Another app the
 * same server serves below it (the lab at /lab/) is not, and is left to the network: kept as
 * this app's shell, it would open in its place offline.
 */
function isShell(url) {
  const bare = url.split(/[?#]/)[0]
  return bare === SHELL || bare === `${SHELL}index.html`
}

/**
 * The build's files that an index.html refers to: `/assets/…` as the build writes them (from
 * the root), or with a base before it. (Read as `…/assets/` with something before it, this
 * found none of the build's own, so the app's files were kept only once a page the worker
 * served asked for them: after a single visit, the app did not open without the network.)
 */
function assetsOf(html) {
  const found = new Set()
  for (const match of html.matchAll(/(?:src|href)="([^"]*\/assets\/[^"]+)"/g)) {
    found.add(new URL(match[1], SHELL).href)
  }
  return [...found]
}

/** Puts `response` in the cache; a failure (the storage quota used up) only leaves it out. */
function keep(request, response) {
  return caches
    .open(CACHE)
    .then((cache) => cache.put(request, response))
    .catch(() => undefined)
}

/** Stores a fresh index.html and its files, and drops files no index.html refers to any more. */
async function storeShell(response) {
  const cache = await caches.open(CACHE)
  const html = await response.clone().text()
  const assets = assetsOf(html)
  await cache.addAll(assets.filter((asset) => asset !== SHELL))
  await cache.put(SHELL, response)
  for (const request of await cache.keys()) {
    if (request.url.startsWith(ASSETS) && !assets.includes(request.url)) await cache.delete(request)
  }
}

self.addEventListener('install', (event) => {
  event.waitUntil(
    fetch(SHELL, { cache: 'no-cache' })
      .then((response) => (response.ok ? storeShell(response) : undefined))
      // A shell that cannot be stored (no network, the site's storage quota used up) leaves
      // the cache as it is: the worker installs anyway, and serves from the network.
      .catch(() => undefined)
      .then(() => self.skipWaiting()),
  )
})

self.addEventListener('activate', (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  )
})

self.addEventListener('fetch', (event) => {
  const { request } = event
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return
  if (request.mode === 'navigate') {
    if (!isShell(request.url)) return
    event.respondWith(
      fetch(request)
        .then((response) => {
          if (response.ok) event.waitUntil(storeShell(response.clone()).catch(() => undefined))
          return response
        })
        .catch(async () => (await caches.match(SHELL)) ?? Response.error()),
    )
    return
  }
  if (request.url.startsWith(ASSETS)) {
    event.respondWith(
      caches
        .match(request)
        .catch(() => undefined)
        .then(
          (cached) =>
            cached ??
            fetch(request).then((response) => {
              // Kept for offline use when it can be. A cache that cannot take it (the site's
              // storage quota used up) must not cost the page the file it fetched: the app
              // would not start at all.
              if (response.ok) event.waitUntil(keep(request, response.clone()))
              return response
            }),
        ),
    )
  }
})
