import { StrictMode } from 'react'
import { createRoot } from 'react-dom/client'
import { App } from './app.js'
import { createLab, defaultSettings, presets, replayLab } from './model/index.js'
import '../../shared/base.css'
import './styles.css'

const root = document.getElementById('root')
if (root === null) throw new Error('index.html has no #root element')

createRoot(root).render(
  <StrictMode>
    <App model={{ createLab, replayLab, defaultSettings, presets }} />
  </StrictMode>,
)
