#!/usr/bin/env node
import { exitWhenWritten } from '../dist/cli/cli-io.js'
import { runCompareCli } from '../dist/cli/compare-cli.js'

await exitWhenWritten(await runCompareCli(process.argv.slice(2)))
