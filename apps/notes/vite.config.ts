import { defaultClientConditions, defineConfig } from 'vite'

// The relay serves the built app and the sync socket on one origin; in development and
// preview, /sync is forwarded to a relay on its default port.
const relay = { '/sync': { target: 'ws://127.0.0.1:8787', ws: true } }

export default defineConfig({
  // Workspace packages are bundled from their sources: no package build needed first.
  resolve: { conditions: ['@chorus/source', ...defaultClientConditions] },
  esbuild: { jsx: 'automatic' },
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true },
  server: { proxy: relay },
  preview: { proxy: relay },
})
