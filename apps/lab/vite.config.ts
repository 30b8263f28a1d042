import { defaultClientConditions, defineConfig } from 'vite'

// The relay serves the lab at /lab/ beside the notes app at /; the lab needs no relay itself:
// its nodes run in the page, on a simulated network.
export default defineConfig({
  base: '/lab/',
  // Workspace packages are bundled from their sources: no package build needed first.
  resolve: { conditions: ['@chorus/source', ...defaultClientConditions] },
  esbuild: { jsx: 'automatic' },
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true },
})
