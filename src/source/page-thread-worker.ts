// The message loop both of the source's page threads run (request-worker.ts,
// push-worker.ts): rehearse once loaded, then serve a migration from the
// main thread's 'serve' on, adopting each channel it is handed, until
// 'stop'. What a thread does with its channels is its ChannelService.
import { parentPort } from 'node:worker_threads';
import { serveAfter, serveAfterRehearsal } from '../fault-path-rehearsal.ts';
import type { Logger } from '../log.ts';
import type { ChannelHandoff } from '../protocol/channel-handoff.ts';
import type { ProtocolError } from '../protocol/errors.ts';
import { threadId } from '../thread-priority.ts';
import { threadLogger } from '../worker-log.ts';
import type { FromPageThread, PageThreadData, ToPageThread } from './page-thread-messages.ts';

export interface ChannelService {
  adopt(id: number, handoff: ChannelHandoff): void;
  closeChannel(id: number, code: number, reason: string): void;
  /** Closes every channel; the service's onStopped follows. */
  stop(code: number, reason: string): void;
  /** A message only this kind of thread takes ('push', 'max-postcopy-bandwidth'). */
  handle?(m: ToPageThread): void;
}

/** What a thread's serve function is given to report back with. */
export interface ServiceReports {
  readonly log: Logger;
  readonly onChannelClosed: (id: number, code: number, reason: string, error?: ProtocolError) => void;
  readonly onStopped: () => void;
}

export interface PageThreadWorker<Data extends PageThreadData> {
  /** Its name in log lines. */
  readonly name: string;
  /** Everything the thread does once a migration gave it RAM and the page server's shared set. */
  readonly serve: (data: Data, reports: ServiceReports) => ChannelService;
  /** Its rehearsal, run once loaded until over or `wanted` (a first message) aborts it; never throws. The fault path's when unset. */
  readonly rehearse?: (log: Logger, wanted: AbortSignal) => Promise<void>;
}

export function runPageThread<Data extends PageThreadData>(worker: PageThreadWorker<Data>): void {
  const port = parentPort!;
  const post = (m: FromPageThread): void => port.postMessage(m);
  let served: ChannelService | undefined;

  const handle = (m: ToPageThread<Data>): void => {
    switch (m.type) {
      case 'serve': {
        const log = threadLogger(m.data.logLevel, worker.name, (line) => post({ type: 'log', line }));
        served = worker.serve(m.data, {
          log,
          onChannelClosed: (id, code, reason, error) =>
            post({ type: 'channel-closed', id, code, reason, ...(error ? { error: { code: error.code, message: error.message } } : {}) }),
          onStopped: () => post({ type: 'stopped' }),
        });
        break;
      }
      // The main thread sends 'serve' before any channel (PageThread.adopt insists).
      case 'channel':
        served!.adopt(m.id, m.handoff);
        break;
      case 'close-channel':
        served?.closeChannel(m.id, m.code, m.reason);
        break;
      case 'stop':
        if (served) served.stop(m.code, m.reason);
        else post({ type: 'stopped' });
        break;
      default:
        served?.handle?.(m);
    }
  };

  const log = threadLogger('debug', worker.name, (line) => post({ type: 'log', line }));
  const rehearsed = (): void => post({ type: 'rehearsed' });
  const { rehearse } = worker;
  if (rehearse) serveAfter<ToPageThread<Data>>(port, (wanted) => rehearse(log, wanted), handle, rehearsed);
  else serveAfterRehearsal<ToPageThread<Data>>(port, log, handle, rehearsed);
  post({ type: 'loaded', tid: threadId() });
}
