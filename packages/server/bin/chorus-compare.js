#!/usr/bin/env node
import { runCompareCli } from '../dist/cli/compare-cli.js'

process.exit(await runCompareCli(process.argv.slice(2)))
