import type { ReactNode } from 'react'
import { isBad, METRICS } from './format.js'
import type { Design, Scoreboard } from './model/index.js'

/** The model's running counts, each a figure tests and people can find by its metric name. */
export function ScoreboardPanel(props: {
  readonly scoreboard: Scoreboard
  readonly design: Design
}): ReactNode {
  return (
    <section className="card scoreboard" aria-labelledby="scoreboard-heading">
      <h2 id="scoreboard-heading">Scoreboard</h2>
      <dl className="metrics">
        {METRICS.filter((metric) => metric.key !== 'leaders' || props.design === 'single-leader').map(
          (metric) => {
            const value = props.scoreboard[metric.key]
            if (value === undefined) return null
            return (
              <div
                key={metric.key}
                className={isBad(metric, value) ? 'metric bad' : 'metric'}
                title={metric.help}
              >
                <dt>{metric.label}</dt>
                <dd data-metric={metric.key}>{value}</dd>
              </div>
            )
          },
        )}
      </dl>
      {props.scoreboard.lostWrites !== undefined && props.scoreboard.lostWrites.length > 0 ? (
        <div className="lost-writes">
          <h3 id="lost-writes-heading">Lost after acknowledgement</h3>
          <ul aria-labelledby="lost-writes-heading">
            {props.scoreboard.lostWrites.map((write) => (
              <li key={write}>{write}</li>
            ))}
          </ul>
        </div>
      ) : null}
    </section>
  )
}
