// Prints the test totals from vitest's JSON report as one plain line, and fails when the
// report is missing or counts no test: a run that tested nothing must not pass.
import { readFileSync } from 'node:fs'

const file = process.argv[2] ?? 'artifacts/vitest.json'
const report = JSON.parse(readFileSync(file, 'utf8'))
const passed = report.numPassedTests ?? 0
const failed = report.numFailedTests ?? 0
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0)
console.log(`Tests: ${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`)
if (failed > 0 || passed === 0) process.exit(1)
