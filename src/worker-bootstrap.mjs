// Worker threads do not inherit tsx's loader on Node 20, so every worker starts
// here and imports its TypeScript entry through tsx's API.
import { writeFileSync } from 'node:fs';
import { workerData } from 'node:worker_threads';
import { tsImport } from 'tsx/esm/api';

// The kernel's name for this thread, as QEMU names its threads: `top -H`,
// perf and /proc then tell the fault thread from a vCPU. Linux keeps 15 bytes.
if (workerData.name) {
  try {
    writeFileSync('/proc/thread-self/comm', `pc:${workerData.name}`.slice(0, 15));
  } catch {
    // Not Linux, or /proc is not mounted: the name is only for people looking on.
  }
}

await tsImport(workerData.entry, import.meta.url);
