/**
 * Work offline, remembered per notebook in this browser, so that it holds across reloads and
 * restarts: the tabs share it while they are open (`wantsConnection`), and a page opened
 * later starts offline when it was left on. The switch in any tab sets it.
 */
const prefix = 'chorus-notes:offline:'

/** Whether Work offline was left on for notebook `space`. */
export function remembersOffline(space: string): boolean {
  try {
    return localStorage.getItem(`${prefix}${space}`) === '1'
  } catch {
    return false
  }
}

/** Remembers Work offline switched `on` (or off) for notebook `space`. */
export function rememberOffline(space: string, on: boolean): void {
  try {
    if (on) localStorage.setItem(`${prefix}${space}`, '1')
    else localStorage.removeItem(`${prefix}${space}`)
  } catch {
    // Storage refused: the switch holds while a tab of the notebook is open.
  }
}
