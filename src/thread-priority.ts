// The fault path's threads run ahead of everything else in the process. On
// a small host the vCPUs and the two bulk streams keep every core busy, and a
// fault thread that waits for a time slice is a vCPU that waits for its page:
// with normal priority the 99th percentile fault took milliseconds, with this
// one a fraction of that (bench:migration). Linux gives each thread its own
// nice value, set through its thread id.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import type { Logger } from './log.ts';

/** Nice value of the fault path's threads; raising priority needs CAP_SYS_NICE. */
export const FAULT_PATH_NICE = -10;

/** This thread's kernel id, from /proc/thread-self (pid/task/tid). */
export function threadId(): number {
  return Number(readlinkSync('/proc/thread-self').split('/')[2]);
}

/** Raises the calling thread's priority; without the privilege it stays as it is, and says so. */
export function prioritizeThisThread(log: Logger): void {
  try {
    setPriority(threadId(), FAULT_PATH_NICE);
  } catch (err) {
    log.info({ code: (err as NodeJS.ErrnoException).code }, `this thread keeps normal priority (nice ${FAULT_PATH_NICE} needs CAP_SYS_NICE); fault latency will suffer on a busy host`);
  }
}
