import { Component, type ErrorInfo, type ReactNode } from 'react'
import { useScreenHeading } from './focus.js'
import { HomeScreen } from './home-screen.js'
import { NotebookScreen } from './notebook-screen.js'
import { NoticeList } from './notice-list.js'
import { useRoute } from './route.js'

/**
 * A screen that failed to render says so, with a way on, instead of leaving the page blank.
 * Keyed by the route, so going elsewhere tries again.
 */
class ScreenFailed extends Component<{ readonly children: ReactNode }, { readonly error: unknown }> {
  override state: { readonly error: unknown } = { error: null }

  static getDerivedStateFromError(error: unknown): { error: unknown } {
    return { error }
  }

  override componentDidCatch(error: unknown, info: ErrorInfo): void {
    console.error('A screen of the notes app failed to render', error, info.componentStack)
  }

  override render(): ReactNode {
    if (this.state.error === null) return this.props.children
    const reason = this.state.error instanceof Error ? this.state.error.message : String(this.state.error)
    return (
      <main className="message-page" role="alert">
        <h1>This screen could not be shown</h1>
        <p>Your notes are safe in this browser. Reload the page, or go to your notebooks.</p>
        <p className="muted small">{reason}</p>
        <div className="actions">
          <button type="button" className="button primary" onClick={() => window.location.reload()}>
            Reload
          </button>
          <a className="button" href="#/">
            Your notebooks
          </a>
        </div>
      </main>
    )
  }
}

/** The app: the start page, or one notebook, as the URL's hash says. */
export function App(): ReactNode {
  const route = useRoute()
  return (
    <>
      <ScreenFailed key={route.name === 'notebook' ? `${route.space}/${route.view}` : route.name}>
        <Screen />
      </ScreenFailed>
      <NoticeList />
    </>
  )
}

function Screen(): ReactNode {
  const route = useRoute()
  const heading = useScreenHeading<HTMLHeadingElement>()
  return (
    <>
      {route.name === 'home' ? (
        <HomeScreen />
      ) : route.name === 'notebook' ? (
        <NotebookScreen key={route.space} space={route.space} view={route.view} />
      ) : (
        <main className="message-page">
          <h1 tabIndex={-1} ref={heading}>
            This link does not open a notebook
          </h1>
          <p>
            A notebook link ends in <code>#/notebook/</code> and the notebook's id. Ask for the link again, or
            go to your notebooks.
          </p>
          <a className="button primary" href="#/">
            Your notebooks
          </a>
        </main>
      )}
    </>
  )
}
