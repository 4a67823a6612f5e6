// The destination's page threads. The fault thread reads the userfaultfd,
// asks the source for each missing page on the urgent channel and places the
// answer, so a vCPU's fault never waits for the main thread. The bulk thread
// places the background push (QEMU's listen thread): read in 512 KiB slabs of
// its own, the push no longer costs the main thread socket reads, copies and
// the garbage collections they caused. Like QEMU's threads they sleep in
// poll(2) on their descriptors (poll-loop.ts), not on an event loop. Their
// placers share the received-pages bitmap with the main thread's: whichever
// places a page first wins, the others get EEXIST.
// Started while the destination waits for a source, it loads its modules
// and rehearses the fault path then (fault-path-rehearsal.ts), and serves
// once told the guest's RAM and userfaultfd.
import { parentPort } from 'node:worker_threads';
import type { MigrationChannel } from '../protocol/channel.ts';
import { adoptChannel, type ChannelHandoff } from '../protocol/channel-handoff.ts';
import { PageBitmap } from '../protocol/page-bitmap.ts';
import { SharedMigrationState } from '../protocol/shared-state.ts';
import type { MigrationState } from '../protocol/state.ts';
import { serveAfterRehearsal } from '../fault-path-rehearsal.ts';
import { PollLoop } from '../poll-loop.ts';
import { KernelUserfaultfd } from '../uffd/kernel.ts';
import { loadNative } from '../uffd/native.ts';
import { prioritizeThisThread, threadId } from '../thread-priority.ts';
import { threadLogger } from '../worker-log.ts';
import { FaultHandler } from './fault-handler.ts';
import type { FaultThreadData, FromFaultThread, ToFaultThread } from './fault-thread-messages.ts';
import { PagePlacer } from './page-placer.ts';
import type { FaultEvent, PlacementRegion } from './uffd-port.ts';

const port = parentPort!;
const post = (m: FromFaultThread): void => port.postMessage(m);

interface Served {
  readonly faults: FaultHandler;
  readonly placer: PagePlacer;
  adopt(id: number, handoff: ChannelHandoff): void;
  closeChannel(code: number, reason: string): void;
  setState(state: MigrationState): void;
}

// Everything the thread does once the main thread knows the guest's RAM and userfaultfd.
function serve(data: FaultThreadData): Served {
  // Log lines go to the main thread's logger: one stream, one format.
  const log = threadLogger(data.logLevel, data.role === 'faults' ? 'fault' : 'bulk', (line) => post({ type: 'log', line }));
  // Only the fault path runs ahead of the vCPUs; the push takes its turn like them.
  if (data.role === 'faults') prioritizeThisThread(log);
  // Moves arrive as messages (entering postcopy-active resends requests); a
  // frame is checked against the shared state, which is never behind what the
  // source has seen: its pushed pages may arrive before the message does.
  let state: MigrationState = data.state;
  const current = SharedMigrationState.attach(data.sharedState);
  /** The channel this thread serves: urgent for 'faults', bulk for 'bulk'. */
  let servedChannel: MigrationChannel | undefined;

  const loop = new PollLoop(log);
  const uffd = new KernelUserfaultfd(data.uffdFd, data.path, data.features, log, { watch: false });
  // Urgent and bulk frames are postcopy frames (the codec refuses precopy ones
  // there), so this placer never touches RAM directly: only through the userfaultfd.
  const region: PlacementRegion = {
    address: data.regionAddress,
    length: data.regionLength,
    bytes: () => {
      throw new Error('a page thread never reads guest RAM');
    },
    discard: () => {
      throw new Error('discards are applied by the main thread');
    },
  };
  const received = PageBitmap.attach(Math.floor(data.regionLength / data.pageSize), data.received);
  const placer = new PagePlacer({ uffd, region, pageSize: data.pageSize, log, received });
  const faults = new FaultHandler({
    placer,
    uffd,
    regionAddress: data.regionAddress,
    pageSize: data.pageSize,
    log,
    request: (pages) => {
      // Before the guest runs here, and while paused, requests wait: entering postcopy-active sends them all.
      // A bulk thread is never given faults, and its channel carries no requests.
      if (data.role !== 'faults' || state !== 'postcopy-active' || !servedChannel?.open) return false;
      servedChannel.send({ type: 'page-request', pages });
      return true;
    },
  });

  if (data.role === 'faults') readFaults(uffd, faults, loop);

  return {
    faults,
    placer,
    adopt(id, handoff) {
      const channel = adoptChannel(handoff, () => current.state, log, loop);
      servedChannel = channel;
      channel.onMessage((m) => {
        if (m.type !== 'pages' && m.type !== 'zero-run') return;
        const wasFull = received.full;
        placer.place(m);
        if (!wasFull && received.full) post({ type: 'all-present' });
      });
      channel.onClose((code, reason, error) => {
        if (servedChannel === channel) servedChannel = undefined;
        post({ type: 'channel-closed', id, code, reason, ...(error ? { error: { code: error.code, message: error.message } } : {}) });
      });
    },
    closeChannel(code, reason) {
      servedChannel?.close(code, reason);
    },
    setState(next) {
      const before = state;
      state = next;
      if (state === 'postcopy-active' && before !== 'postcopy-active') faults.resendOutstanding();
    },
  };
}

// The fault thread's own work: every missing-page fault becomes a request, in the wake-up that read it.
function readFaults(uffd: KernelUserfaultfd, faults: FaultHandler, loop: PollLoop): void {
  uffd.on('events', (batch) => {
    for (const e of batch) if (e.type === 'pagefault' && !(e as FaultEvent).wp) faults.handleFault(e as FaultEvent);
  });
  const faultSource = { fd: uffd.descriptor, pollEvents: loadNative().constants.POLLIN, ready: () => uffd.readPending() };
  uffd.on('error', (err: Error) => {
    loop.remove(faultSource);
    post({ type: 'failed', message: `the fault thread cannot read the userfaultfd: ${err.message}` });
  });
  loop.add(faultSource);
}

let served: Served | undefined;

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
