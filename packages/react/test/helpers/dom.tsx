import { isChorusError, type Replica } from '@chorus/client'
import { ChorusProvider } from '@chorus/react'
import { Component, type ReactNode, act as reactAct, StrictMode } from 'react'
import { createRoot, type Root } from 'react-dom/client'

declare global {
  var IS_REACT_ACT_ENVIRONMENT: boolean | undefined
}

// Outside `act`, the updates that replica events cause render as they would in an app (as
// Testing Library's `waitFor` lets them); inside it, React holds them until the scope ends.
globalThis.IS_REACT_ACT_ENVIRONMENT = false

/** React's `act`, with React told for its duration that it runs under `act`. */
export async function act(work: () => unknown): Promise<void> {
  globalThis.IS_REACT_ACT_ENVIRONMENT = true
  try {
    await reactAct(async () => {
      await work()
    })
  } finally {
    globalThis.IS_REACT_ACT_ENVIRONMENT = false
  }
}

/** Lets React finish any render it has scheduled. */
export function flush(): Promise<void> {
  return act(() => {})
}

/** A React root in the test document, with the replica provided. */
export interface Mounted {
  readonly container: HTMLElement
  text(): string
  render(node: ReactNode): Promise<void>
  unmount(): Promise<void>
}

const mounted = new Set<Mounted>()

/**
 * Renders `node` under a provider of `replica` in a root of its own; with `strict`, the root is
 * `<StrictMode>` around the provider, as an app's entry point has it.
 */
export async function mount(
  replica: Replica,
  node: ReactNode,
  options: { strict?: boolean } = {},
): Promise<Mounted> {
  const container = document.createElement('div')
  document.body.append(container)
  const root: Root = createRoot(container)
  const tree = (next: ReactNode) => {
    const provided = <ChorusProvider replica={replica}>{next}</ChorusProvider>
    return options.strict === true ? <StrictMode>{provided}</StrictMode> : provided
  }
  const view: Mounted = {
    container,
    text: () => container.textContent ?? '',
    render: (next) => act(() => root.render(tree(next))),
    unmount: async () => {
      mounted.delete(view)
      await act(() => root.unmount())
      container.remove()
    },
  }
  mounted.add(view)
  await view.render(node)
  return view
}

/** Unmounts whatever a test left mounted, one root at a time (`act` scopes must not overlap). */
export async function unmountAll(): Promise<void> {
  for (const view of [...mounted]) await view.unmount()
}

/**
 * Resolves once `check` holds, evaluated now and after every change to the document (no
 * polling, no sleeps), then lets React finish; rejects after `ms`, naming what it waited for.
 */
export async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    if (check()) {
      resolve()
      return
    }
    const observer = new MutationObserver(() => {
      if (!check()) return
      observer.disconnect()
      clearTimeout(timer)
      resolve()
    })
    observer.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true })
    const timer = setTimeout(() => {
      observer.disconnect()
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`))
    }, ms)
  })
  await flush()
}

/** An error boundary that shows `failed: <code>` for a `ChorusError` it caught. */
export class Boundary extends Component<{ children: ReactNode }, { error: unknown }> {
  override state = { error: undefined as unknown }
  static getDerivedStateFromError(error: unknown) {
    return { error }
  }
  override render() {
    const { error } = this.state
    if (error === undefined) return this.props.children
    return <p>{isChorusError(error) ? `failed: ${error.code}` : 'failed: other'}</p>
  }
}
