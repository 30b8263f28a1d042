import { type ReactNode, useId } from 'react'

/** One of a few options as a row of radio buttons drawn as a segmented control. */
export function ChoiceGroup<TValue extends string>(props: {
  readonly label: string
  readonly value: TValue
  readonly options: readonly { readonly value: TValue; readonly label: string }[]
  readonly onChange: (value: TValue) => void
  readonly disabled?: boolean
}): ReactNode {
  const name = useId()
  return (
    <fieldset className="choice-group" disabled={props.disabled}>
      <legend>{props.label}</legend>
      <div className="segments">
        {props.options.map((option) => (
          <label key={option.value} className={option.value === props.value ? 'segment active' : 'segment'}>
            <input
              type="radio"
              name={name}
              value={option.value}
              checked={option.value === props.value}
              onChange={() => props.onChange(option.value)}
            />
            <span>{option.label}</span>
          </label>
        ))}
      </div>
    </fieldset>
  )
}
