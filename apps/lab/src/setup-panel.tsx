import { type ReactNode, useEffect, useState } from 'react'
import { ChoiceGroup } from './choice-group.js'
import type { Design, LabSettings, Replication, Resolver } from './model/index.js'
import { nodeRange, quorumsOverlap, withNodes, withQuorum } from './settings-edit.js'
import { SwitchField } from './switch-field.js'

const DESIGNS: readonly { value: Design; label: string }[] = [
  { value: 'multi-leader', label: 'Multi-leader' },
  { value: 'single-leader', label: 'Single-leader' },
  { value: 'quorum', label: 'Quorum' },
]

const REPLICATIONS: readonly { value: Replication; label: string }[] = [
  { value: 'async', label: 'Async' },
  { value: 'semi-sync', label: 'Semi-sync' },
  { value: 'sync', label: 'Sync' },
]

const RESOLVERS: readonly { value: Resolver; label: string }[] = [
  { value: 'lww', label: 'Last write wins' },
  { value: 'merge', label: 'Merge' },
  { value: 'manual', label: 'Manual' },
]

const READ_REPAIRS: readonly { value: LabSettings['quorum']['readRepair']; label: string }[] = [
  { value: 'off', label: 'Off' },
  { value: 'async', label: 'Async' },
  { value: 'blocking', label: 'Blocking' },
]

/** A labelled range input with its value beside it. */
function Slider(props: {
  readonly label: string
  readonly value: number
  readonly min: number
  readonly max: number
  readonly step?: number
  /** Shown after the value, e.g. ` ms`. */
  readonly unit?: string
  readonly disabled?: boolean
  readonly onChange: (value: number) => void
}): ReactNode {
  return (
    <label className="slider">
      <span className="slider-label">{props.label}</span>
      <input
        type="range"
        min={props.min}
        max={props.max}
        step={props.step ?? 1}
        value={props.value}
        disabled={props.disabled}
        onChange={(event) => props.onChange(Number(event.target.value))}
      />
      <output className="slider-value">
        {props.value}
        {props.unit}
      </output>
    </label>
  )
}

/** The jitter slider's range: up to this many ms of extra delay per message. */
const JITTER_MAX = 200

/** The seed field: applied when the person leaves it or presses Enter, not on every key. */
function SeedField(props: { readonly seed: number; readonly onChange: (seed: number) => void }): ReactNode {
  const [draft, setDraft] = useState(String(props.seed))
  useEffect(() => setDraft(String(props.seed)), [props.seed])
  const commit = () => {
    // An emptied field is no seed (Number('') is 0): it goes back to the one in use.
    const seed = draft.trim() === '' ? Number.NaN : Number(draft)
    if (Number.isSafeInteger(seed) && seed >= 0 && seed !== props.seed) props.onChange(seed)
    else setDraft(String(props.seed))
  }
  return (
    <div className="seed-field">
      <label>
        <span>Seed</span>
        <input
          inputMode="numeric"
          value={draft}
          onChange={(event) => setDraft(event.target.value.replace(/\D/g, ''))}
          onBlur={commit}
          onKeyDown={(event) => {
            if (event.key === 'Enter') commit()
          }}
        />
      </label>
      <button
        type="button"
        className="button small"
        onClick={() => props.onChange(Math.floor(Math.random() * 1_000_000))}
      >
        New seed
      </button>
    </div>
  )
}

/**
 * The design and its knobs. Every change starts the lab over with the new settings (a preset's
 * script is kept when the design and the cluster size stay, so the same story can be watched
 * under another rule).
 */
export function SetupPanel(props: {
  readonly settings: LabSettings
  readonly disabled: boolean
  readonly onDesign: (design: Design) => void
  readonly onChange: (settings: LabSettings) => void
}): ReactNode {
  const { settings, onChange } = props
  const single = settings.singleLeader
  const quorum = settings.quorum
  const setSingle = (patch: Partial<LabSettings['singleLeader']>) =>
    onChange({ ...settings, singleLeader: { ...single, ...patch } })
  return (
    <section className="card setup" aria-labelledby="setup-heading">
      <h2 id="setup-heading">Design</h2>
      <ChoiceGroup
        label="Replication design"
        value={settings.design}
        options={DESIGNS}
        disabled={props.disabled}
        onChange={props.onDesign}
      />
      <Slider
        label={settings.design === 'multi-leader' ? 'Replicas' : 'Nodes'}
        value={settings.nodes}
        min={nodeRange(settings.design).min}
        max={nodeRange(settings.design).max}
        disabled={props.disabled}
        onChange={(nodes) => onChange(withNodes(settings, nodes))}
      />
      {settings.design === 'single-leader' ? (
        <>
          <ChoiceGroup
            label="Replication"
            value={single.replication}
            options={REPLICATIONS}
            disabled={props.disabled || single.chain}
            onChange={(replication) => setSingle({ replication })}
          />
          <div className="switches">
            <SwitchField
              label="Chain"
              hint="Chain replication: head → … → tail"
              checked={single.chain}
              disabled={props.disabled}
              onChange={(chain) => setSingle({ chain })}
            />
            <SwitchField
              label="Fencing"
              hint="Epochs checked everywhere: a deposed leader's writes are rejected, and followers keep only the newest leader's log. Off, epochs are ignored: a deposed leader goes on acknowledging, and followers take entries by position, so replicas can diverge for good"
              checked={single.fencing}
              disabled={props.disabled}
              onChange={(fencing) => setSingle({ fencing })}
            />
            <SwitchField
              label="Automatic failover"
              hint="Followers elect a new leader when heartbeats stop"
              checked={single.autoFailover}
              disabled={props.disabled}
              onChange={(autoFailover) => setSingle({ autoFailover })}
            />
          </div>
        </>
      ) : null}
      {settings.design === 'quorum' ? (
        <>
          <div className="quorum-sliders">
            <Slider
              label="N"
              value={quorum.n}
              min={1}
              max={settings.nodes}
              disabled={props.disabled}
              onChange={(n) => onChange(withQuorum(settings, { n }))}
            />
            <Slider
              label="W"
              value={quorum.w}
              min={1}
              max={quorum.n}
              disabled={props.disabled}
              onChange={(w) => onChange(withQuorum(settings, { w }))}
            />
            <Slider
              label="R"
              value={quorum.r}
              min={1}
              max={quorum.n}
              disabled={props.disabled}
              onChange={(r) => onChange(withQuorum(settings, { r }))}
            />
          </div>
          <p className={quorumsOverlap(quorum) ? 'quorum-rule ok' : 'quorum-rule warning'}>
            W + R = {quorum.w + quorum.r} {quorumsOverlap(quorum) ? '>' : '≤'} N = {quorum.n}:{' '}
            {!quorumsOverlap(quorum)
              ? 'a read can miss the latest write.'
              : quorum.sloppy
                ? 'but sloppy: a write may count stand-ins outside the key’s N homes, which no read asks, so a read can still miss it.'
                : 'every read quorum overlaps every write quorum.'}
          </p>
          <ChoiceGroup
            label="Read repair"
            value={quorum.readRepair}
            options={READ_REPAIRS}
            disabled={props.disabled}
            onChange={(readRepair) => onChange(withQuorum(settings, { readRepair }))}
          />
          <SwitchField
            label="Sloppy quorum"
            hint="Writes land on stand-in nodes when home nodes are unreachable (hinted handoff)"
            checked={quorum.sloppy}
            disabled={props.disabled}
            onChange={(sloppy) => onChange(withQuorum(settings, { sloppy }))}
          />
        </>
      ) : null}
      {settings.design === 'multi-leader' ? (
        <ChoiceGroup
          label="Conflict resolver"
          value={settings.multiLeader.resolver}
          options={RESOLVERS}
          disabled={props.disabled}
          onChange={(resolver) => onChange({ ...settings, multiLeader: { resolver } })}
        />
      ) : null}
      <Slider
        label="Jitter"
        value={settings.jitterMs ?? 0}
        min={0}
        max={JITTER_MAX}
        step={10}
        unit=" ms"
        disabled={props.disabled}
        onChange={(jitterMs) => onChange({ ...settings, jitterMs })}
      />
      <p className="muted small">
        {(settings.jitterMs ?? 0) === 0
          ? 'No jitter: every seed gives the same run.'
          : 'Each message waits up to this much longer, drawn from the seed: another seed, another run.'}
      </p>
      <SeedField seed={settings.seed} onChange={(seed) => onChange({ ...settings, seed })} />
    </section>
  )
}
