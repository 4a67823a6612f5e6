// One pino logger for the whole process: readable on a TTY, JSON lines
// otherwise, always on stderr so stdout stays free for figures and the guest
// console. Library code takes a child of this; tests pass their own sink.
import pino, { type Logger, type DestinationStream } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level?: string;
  /** Where lines go; defaults to stderr. Tests pass an in-memory stream. */
  destination?: DestinationStream;
  /** Force pretty output; defaults to whether stderr is a TTY. */
  pretty?: boolean;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.POSTCOPY_LOG ?? 'info';
  if (options.destination) return pino({ level }, options.destination);
  const pretty = options.pretty ?? process.stderr.isTTY === true;
  if (pretty) {
    return pino({
      level,
      transport: { target: 'pino-pretty', options: { destination: 2, colorize: true, ignore: 'pid,hostname' } },
    });
  }
  return pino({ level }, pino.destination(2));
}

let rootLogger: Logger | undefined;

/** The process-wide logger, created on first use. */
export function logger(): Logger {
  rootLogger ??= createLogger();
  return rootLogger;
}

export function setLogger(l: Logger): void {
  rootLogger = l;
}
