// The message loop both of the source's page threads run (request-worker.ts,
// push-worker.ts): rehearse once loaded, then serve a migration from the
// main thread's 'serve' on, adopting each channel it is handed, until
// 'stop'. What a thread does with its channels is its ChannelService.
//
// A thread started for a machine's RAM makes its view of it at once: V8
// counts the view's length as external memory, and the major collection
// that follows its making (2-14 ms, with helper threads) then runs while
// the source waits, not in a migration's setup or downtime.
import { parentPort } from 'node:worker_threads';
import { serveAfter, serveAfterRehearsal } from '../fault-path-rehearsal.ts';
import type { Logger } from '../log.ts';
import type { ChannelHandoff } from '../protocol/channel-handoff.ts';
import type { ProtocolError } from '../protocol/errors.ts';
import { attachRam, type RamHandle } from '../guest/ram.ts';
import { threadId } from '../thread-id.ts';
import { workerPayload } from '../worker.ts';
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

/** What a thread's serve function is given: where to report, and its view of RAM. */
export interface ServiceContext {
  readonly log: Logger;
  /** The first `length` bytes of the RAM behind `handle`, through the view made at start when it is the same RAM. */
  readonly ramBytes: (handle: RamHandle, length: number) => Uint8Array;
  readonly onChannelClosed: (id: number, code: number, reason: string, error?: ProtocolError) => void;
  readonly onStopped: () => void;
}

export interface PageThreadWorker<Data extends PageThreadData> {
  /** Its name in log lines. */
  readonly name: string;
  /** Everything the thread does once a migration gave it RAM and the page server's shared set. */
  readonly serve: (data: Data, context: ServiceContext) => ChannelService;
  /** Its rehearsal, run once loaded until over or `wanted` (a first message) aborts it; never throws. The fault path's when unset. */
  readonly rehearse?: (log: Logger, wanted: AbortSignal) => Promise<void>;
}

/** What a page thread is started with (workerPayload). */
export interface PageThreadStart {
  /** The machine's RAM, when known before any migration. */
  readonly ram: RamHandle | undefined;
}

/** A view of the first `length` bytes of the RAM behind `handle`. */
export function attachRamBytes(handle: RamHandle, length: number): Uint8Array {
  return new Uint8Array(attachRam(handle).buffer, 0, length);
}

/**
 * Views of RAM for a thread started with `early` (the machine's RAM, or
 * none): its view is made now, and handed out again for a handle of the
 * same region, which a message brings as a fresh copy (so not identical to
 * `early`: the same address and length say it is the same mapping).
 */
export function ramViews(early: RamHandle | undefined): (handle: RamHandle, length: number) => Uint8Array {
  const earlyView = early && attachRam(early).buffer;
  const same = (handle: RamHandle): boolean =>
    early?.kind === 'region' && handle.kind === 'region' && early.handle.kind === handle.handle.kind && early.handle.address === handle.handle.address && early.handle.length === handle.handle.length;
  return (handle, length) => (earlyView && same(handle) ? new Uint8Array(earlyView, 0, length) : attachRamBytes(handle, length));
}

export function runPageThread<Data extends PageThreadData>(worker: PageThreadWorker<Data>): void {
  const port = parentPort!;
  const post = (m: FromPageThread): void => port.postMessage(m);
  let served: ChannelService | undefined;
  const ramBytes = ramViews(workerPayload<PageThreadStart | null>()?.ram);

  const handle = (m: ToPageThread<Data>): void => {
    switch (m.type) {
      case 'serve': {
        const log = threadLogger(m.data.logLevel, worker.name, (line) => post({ type: 'log', line }));
        served = worker.serve(m.data, {
          log,
          ramBytes,
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
