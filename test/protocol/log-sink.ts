// An in-memory pino destination so tests can read what was logged.
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/log.ts';

export interface LogSink {
  readonly log: Logger;
  readonly lines: () => { level: number; msg: string; [k: string]: unknown }[];
}

export function memoryLog(level = 'info'): LogSink {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const log = createLogger({ level, destination });
  return {
    log,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l)),
  };
}
