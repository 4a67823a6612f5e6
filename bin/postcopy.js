#!/usr/bin/env node
// The `postcopy` command: TypeScript sources run through tsx, no build step.
import { setFlagsFromString } from 'node:v8';
import { register } from 'tsx/esm/api';

// A migration's switchover runs code that never ran before in that process
// (saving, restoring, starting harts). Compiled lazily, on first call, it
// took half of the downtime; compiled with everything else at start-up it
// costs ~150 ms of start-up instead. V8 flags are per process, so the vCPU
// and fault threads compile eagerly too.
if (process.argv[2] === 'source' || process.argv[2] === 'destination') setFlagsFromString('--no-lazy');
register();
await import('../src/cli/index.ts');
