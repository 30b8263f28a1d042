import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { App } from './app.js'
import '../../shared/base.css'
import './styles.css'

const root = document.getElementById('root')
if (root === null) throw new Error('index.html has no #root element')
// Keeps the app itself available offline (the notes are in IndexedDB already).
if (import.meta.env.PROD && 'serviceWorker' in navigator) {
  navigator.serviceWorker.register('./sw.js').catch((error: unknown) => {
    console.warn('The app will not open offline: its service worker did not install.', error)
  })
}

createRoot(root).render(
  <StrictMode>
    <App />
  </StrictMode>,
)
