// The destination's page threads. The fault thread reads the userfaultfd,
// asks the source for each missing page on the urgent channel and places the
// answer, so a vCPU's fault never waits for the main thread. The bulk thread
// places precopy pages and the background push (QEMU's listen thread): read
// in 512 KiB slabs of its own, they no longer cost the main thread socket
// reads, copies and the garbage collections they caused. Like QEMU's threads
// they sleep in poll(2) on their descriptors (poll-loop.ts), not on an event
// loop. Their placers share the received-pages bitmap with the main thread's:
// whichever places a page first wins, the others get EEXIST.
// Started while the destination waits for a source, it loads its modules
// and rehearses the fault path then (fault-path-rehearsal.ts), and serves
// once told the guest's RAM and userfaultfd.
import { parentPort } from 'node:worker_threads';
import { PageBitmap } from '../protocol/page-bitmap.ts';
import { SharedMigrationState } from '../protocol/shared-state.ts';
import { serveAfterRehearsal } from '../fault-path-rehearsal.ts';
import { PollLoop } from '../poll-loop.ts';
import { KernelUserfaultfd } from '../uffd/kernel.ts';
import { threadId } from '../thread-id.ts';
import { threadLogger } from '../worker-log.ts';
import type { FaultThreadData, FromFaultThread, ToFaultThread } from './fault-thread-messages.ts';
import { PageService, pageThreadRegion } from './page-service.ts';

const port = parentPort!;
const post = (m: FromFaultThread): void => port.postMessage(m);

// Everything the thread does once the main thread knows the guest's RAM and userfaultfd.
function serve(data: FaultThreadData): PageService {
  // Log lines go to the main thread's logger: one stream, one format.
  const log = threadLogger(data.logLevel, data.role === 'faults' ? 'fault' : 'bulk', (line) => post({ type: 'log', line }));
  return new PageService({
    role: data.role,
    uffd: new KernelUserfaultfd(data.uffdFd, data.path, data.features, log, { watch: false }),
    region: pageThreadRegion(data.regionAddress, data.regionLength),
    pageSize: data.pageSize,
    received: PageBitmap.attach(Math.floor(data.regionLength / data.pageSize), data.received),
    // Moves arrive as messages (entering postcopy-active resends requests); a
    // frame is checked against the shared state, which is never behind what the
    // source has seen: its pushed pages may arrive before the message does.
    states: SharedMigrationState.attach(data.sharedState),
    state: data.state,
    // Its work is all done in the loop: see PollLoopOptions.
    loop: new PollLoop(log, undefined, { chained: true }),
    log,
    onAllPresent: () => post({ type: 'all-present' }),
    onPrecopyPlaced: (pages) => post({ type: 'precopy-placed', pages }),
    onChannelClosed: (id, code, reason, error) =>
      post({ type: 'channel-closed', id, code, reason, ...(error ? { error: { code: error.code, message: error.message } } : {}) }),
    onFailure: (message) => post({ type: 'failed', message }),
  });
}

let served: PageService | undefined;

function handle(m: ToFaultThread): void {
  if (m.type === 'serve') {
    served = serve(m.data);
    return;
  }
  if (!served) return;
  switch (m.type) {
    case 'channel':
      served.adopt(m.id, m.handoff);
      break;
    case 'close-channel':
      served.closeChannel(m.code, m.reason);
      break;
    case 'state':
      served.setState(m.state);
      break;
    case 'fault':
      served.faults.handleFault(m.event);
      break;
    case 'precopy-sync':
      served.awaitPrecopy(m.pages);
      break;
    case 'figures': {
      const { faults, placer } = served;
      post({
        type: 'figures',
        figures: { faults: faults.figures, placer: placer.figures, latencyUs: faults.stats.summary(), blocktimeMs: faults.stats.blocktimeMs },
      });
      break;
    }
  }
}

serveAfterRehearsal<ToFaultThread>(port, threadLogger('debug', 'page-thread', (line) => post({ type: 'log', line })), handle, () => post({ type: 'rehearsed' }));
post({ type: 'loaded', tid: threadId() });
