import type { ReactNode } from 'react'
import { HomeScreen } from './home-screen.js'
import { NotebookScreen } from './notebook-screen.js'
import { NoticeList } from './notice-list.js'
import { useRoute } from './route.js'

/** The app: the start page, or one notebook, as the URL's hash says. */
export function App(): ReactNode {
  const route = useRoute()
  return (
    <>
      {route.name === 'home' ? (
        <HomeScreen />
      ) : route.name === 'notebook' ? (
        <NotebookScreen key={route.space} space={route.space} view={route.view} />
      ) : (
        <main className="message-page">
          <h1>This link does not open a notebook</h1>
          <p>
            A notebook link ends in <code>#/notebook/</code> and the notebook's id. Ask for the link again, or
            go to your notebooks.
          </p>
          <a className="button primary" href="#/">
            Your notebooks
          </a>
        </main>
      )}
      <NoticeList />
    </>
  )
}
