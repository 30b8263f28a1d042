import type { ReactNode } from 'react'

/** An on/off switch (a checkbox with the switch role), drawn like the notes app's. */
export function SwitchField(props: {
  readonly label: string
  readonly checked: boolean
  readonly disabled?: boolean
  readonly onChange: (checked: boolean) => void
  readonly hint?: string
}): ReactNode {
  return (
    <label className="switch" title={props.hint}>
      <input
        type="checkbox"
        role="switch"
        aria-checked={props.checked}
        checked={props.checked}
        disabled={props.disabled}
        onChange={(event) => props.onChange(event.target.checked)}
      />
      <span className="switch-track" aria-hidden="true" />
      <span>{props.label}</span>
    </label>
  )
}
