#!/usr/bin/env node
import { exitWhenWritten } from '../dist/cli/cli-io.js'
import { runClusterCli } from '../dist/cli/cluster-cli.js'

await exitWhenWritten(await runClusterCli(process.argv.slice(2)))
