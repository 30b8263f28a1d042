import type { ReactNode } from 'react'
import type { Preset } from './model/index.js'

/** The classic stories, one button each; the chosen one is marked. */
export function PresetList(props: {
  readonly presets: readonly Preset[]
  readonly current: string | null
  readonly disabled: boolean
  readonly onLoad: (preset: Preset) => void
}): ReactNode {
  return (
    <section className="card presets" aria-labelledby="presets-heading">
      <h2 id="presets-heading">Stories</h2>
      <p className="muted small">Classic failures, scripted. Load one, then play it or skip to its end.</p>
      <ul className="preset-list">
        {props.presets.map((preset) => (
          <li key={preset.id}>
            <button
              type="button"
              className={preset.id === props.current ? 'preset active' : 'preset'}
              aria-pressed={preset.id === props.current}
              data-preset={preset.id}
              disabled={props.disabled}
              onClick={() => props.onLoad(preset)}
            >
              <span className="preset-title">{preset.title}</span>
              <span className="preset-design muted small">{preset.settings.design}</span>
            </button>
          </li>
        ))}
      </ul>
    </section>
  )
}
