#!/usr/bin/env node
import { exitWhenWritten, runCli } from '../dist/cli.js'

await exitWhenWritten(await runCli(process.argv.slice(2)))
