// A thread's kernel id, which Linux names its per-thread figures by
// (/proc/PID/task/TID): bench:fault-path reads the page threads' CPU time
// there, and `renice` takes it to favour one thread over the others.
import { readlinkSync } from 'node:fs';

/** This thread's kernel id, from /proc/thread-self (pid/task/tid). */
export function threadId(): number {
  return Number(readlinkSync('/proc/thread-self').split('/')[2]);
}
