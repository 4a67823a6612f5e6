// Logging from a worker thread through its owner's logger: the worker's pino
// writes each line into a message and the owning thread logs it again, so a
// process keeps one log stream in one format (and a test's in-memory sink
// sees what its workers logged).
import pino from 'pino';
import type { Logger } from './log.ts';

const LEVELS: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};

/** In the worker: a logger whose lines go to `post`. */
export function threadLogger(level: string, thread: string, post: (line: string) => void): Logger {
  return pino({ level, base: { thread } }, { write: post });
}

/** In the owning thread: logs a line a threadLogger posted. */
export function relayLogLine(log: Logger, line: string): void {
  const { level, msg, time: _time, pid: _pid, hostname: _hostname, ...fields } = JSON.parse(line) as Record<string, unknown>;
  log[LEVELS[level as number] ?? 'info'](fields, typeof msg === 'string' ? msg : '');
}
