#!/usr/bin/env node
import { runClusterCli } from '../dist/cli/cluster-cli.js'

process.exit(await runClusterCli(process.argv.slice(2)))
