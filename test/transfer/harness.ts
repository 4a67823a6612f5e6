// A source and a destination in one test process, joined by real WebSockets
// on 127.0.0.1: the destination's RAM is a real region registered with a
// real userfaultfd (kernel or sim backend), the source's a patterned array.
import type { Worker } from 'node:worker_threads';
import type WebSocket from 'ws';
import { IncomingPages } from '../../src/destination/incoming-pages.ts';
import { placementRegion } from '../../src/destination/uffd-port.ts';
import { generateSessionId, generateToken } from '../../src/protocol/auth.ts';
import { connectMigration } from '../../src/protocol/connect.ts';
import { MigrationListener, type ChannelSet } from '../../src/protocol/listener.ts';
import type { ControlMessage } from '../../src/protocol/messages.ts';
import { PageBitmap } from '../../src/protocol/page-bitmap.ts';
import { MigrationStateMachine } from '../../src/protocol/state.ts';
import { PageServer, type PageServerOptions } from '../../src/source/page-server.ts';
import { MigrationChannel } from '../../src/protocol/channel.ts';
import { PushThread, RequestThread, type SourceChannels } from '../../src/source/page-thread.ts';
import { allocateRegion, type Backend, type GuestRegion } from '../../src/uffd/region.ts';
import { openUserfaultfd } from '../../src/uffd/open.ts';
import type { Userfaultfd } from '../../src/uffd/userfaultfd.ts';
import { startWorker } from '../../src/worker.ts';
import { memoryLog } from '../protocol/log-sink.ts';
import { PAGE, patternRam } from './pattern.ts';

export interface PairOptions {
  readonly backend: Backend;
  readonly pages: number;
  readonly server?: Partial<PageServerOptions>;
  /** The push's cap, bytes per second. */
  readonly maxPostcopyBandwidth?: number;
  readonly bulkQueueFrames?: number;
}

export interface Pair {
  readonly ram: Uint8Array;
  readonly server: PageServer;
  readonly source: SourceChannels;
  readonly destChannels: ChannelSet;
  readonly sourceState: MigrationStateMachine;
  readonly region: GuestRegion;
  readonly uffd: Userfaultfd;
  readonly incoming: IncomingPages;
  readonly destState: MigrationStateMachine;
  /** Resolves when the source receives `complete`. */
  readonly completed: Promise<number>;
  /** Hands bulk to the push thread and starts the push, as the source does once the guest runs on the destination. */
  startPush(): void;
  /** Kills the three sockets abruptly; resolves when both sides saw it (postcopy-paused). */
  breakConnection(): Promise<void>;
  /** Reconnects with resume; resolves once the source applied the destination's bitmap. */
  reconnect(): Promise<void>;
  /** Sends `m` on control and resolves on the destination's ack. */
  command(m: ControlMessage): Promise<void>;
  touch(pages: readonly number[], generations?: Record<number, number>): Promise<{ wrong: number[]; checked: number }>;
  close(): Promise<void>;
}

export async function startPair(options: PairOptions): Promise<Pair> {
  const { log } = memoryLog('warn');
  const token = generateToken();
  const region = allocateRegion(options.pages * PAGE, options.backend);
  const uffd = await openUserfaultfd({ path: options.backend === 'kernel' ? 'dev' : 'sim', logger: log });
  uffd.register(region.address, region.length);
  const destState = new MigrationStateMachine();
  const incoming = new IncomingPages({ uffd, region: placementRegion(region), pageSize: PAGE, state: destState, log, bulkQueueFrames: options.bulkQueueFrames });
  incoming.watch(uffd);
  const listener = await MigrationListener.listen({ token, pageSize: PAGE, state: destState, log });
  let destChannels: ChannelSet | undefined;
  listener.onMigration(({ channels, resume }) => {
    destChannels = channels;
    channels.control.onClose(() => {
      if (destState.state === 'postcopy-active') destState.moveTo('postcopy-paused');
      incoming.detach();
    });
    incoming.attach(channels, (m) => {
      if (m.type === 'precopy-begin') destState.moveTo('precopy-active');
      else if (m.type === 'machine-state') destState.moveTo('device');
      else if (m.type === 'postcopy-run' || m.type === 'resume') destState.moveTo('postcopy-active');
      else return;
      channels.control.send({ type: 'ack', of: m.type });
      if (m.type === 'postcopy-run') incoming.postcopyStarted();
      if (m.type === 'resume') incoming.resumed();
    });
    if (resume) channels.control.send(incoming.recoverMessage());
  });

  // Shared, so the request thread reads the same bytes the tests write.
  const ramBuffer = new SharedArrayBuffer(options.pages * PAGE);
  const ram = new Uint8Array(ramBuffer);
  ram.set(patternRam(options.pages));
  const sourceState = new MigrationStateMachine();
  const session = generateSessionId();
  const server = new PageServer({ ram, pageSize: PAGE, log, ...options.server });
  const requests = new RequestThread(log);
  requests.serve({ ram: { kind: 'shared', buffer: ramBuffer }, share: server.share, state: sourceState });
  const pushes = new PushThread(log);
  pushes.serve({
    ram: { kind: 'shared', buffer: ramBuffer },
    share: server.share,
    state: sourceState,
    ramAddress: undefined,
    maxPostcopyBandwidth: options.maxPostcopyBandwidth,
  });
  for (const thread of [requests, pushes]) {
    thread.onFailure((err) => {
      throw err;
    });
  }
  let pushing = false;
  const handOverBulk = (channels: SourceChannels): void => {
    if (channels.bulk instanceof MigrationChannel) channels.bulk = pushes.adopt(channels.bulk);
  };
  const acks: ((of: string) => void)[] = [];
  let complete: (pages: number) => void = () => undefined;
  const completed = new Promise<number>((resolve) => (complete = resolve));
  let recovered: () => void = () => undefined;

  const connect = async (resume: boolean): Promise<SourceChannels> => {
    const channels = await connectMigration({
      url: `ws://127.0.0.1:${listener.port}`,
      token,
      session,
      resume,
      identity: { pageSize: PAGE, ramBase: 0x8000_0000, ramSize: ram.length, vcpus: 1, imageSha256: '0'.repeat(64) },
      state: sourceState,
      log,
    });
    const urgent = requests.adopt(channels.urgent);
    channels.control.onClose(() => {
      if (sourceState.state === 'postcopy-active') sourceState.moveTo('postcopy-paused');
      server.detach();
    });
    channels.control.onMessage((m) => {
      if (m.type === 'ack') acks.shift()?.(m.of);
      if (m.type === 'recover') {
        server.markReceived(PageBitmap.from(server.pageCount, m.received));
        sourceState.moveTo('postcopy-active');
        channels.control.send({ type: 'resume' });
        if (pushing) pushes.push();
        recovered();
      }
      if (m.type === 'complete') {
        sourceState.moveTo('completed');
        server.stop();
        complete(m.pages);
      }
    });
    if (!resume) server.attach(channels);
    const sourceChannels: SourceChannels = { control: channels.control, bulk: channels.bulk, urgent };
    if (pushing) handOverBulk(sourceChannels);
    return sourceChannels;
  };
  let source = await connect(false);
  await Promise.all([requests.loaded(), pushes.loaded()]);

  const workers = new Set<Worker>();
  return {
    ram,
    server,
    get source() {
      return source;
    },
    get destChannels() {
      if (!destChannels) throw new Error('no incoming migration yet');
      return destChannels;
    },
    sourceState,
    region,
    uffd,
    incoming,
    destState,
    completed,
    startPush() {
      pushing = true;
      handOverBulk(source);
      pushes.push();
    },
    async breakConnection() {
      const closed = [source.control, destChannels?.control].map((c) => new Promise<void>((resolve) => c?.onClose(() => resolve())));
      (source.control.ws as WebSocket).terminate();
      if (source.bulk instanceof MigrationChannel) (source.bulk.ws as WebSocket).terminate();
      else source.bulk.close(1001, 'connection broken');
      source.urgent.close(1001, 'connection broken');
      await Promise.all(closed);
    },
    async reconnect() {
      const done = new Promise<void>((resolve) => (recovered = resolve));
      source = await connect(true);
      await done;
    },
    command(m) {
      const acked = new Promise<void>((resolve) => acks.push(() => resolve()));
      source.control.send(m);
      return acked;
    },
    touch(pages, generations) {
      const worker = startWorker(new URL('./toucher.ts', import.meta.url), { handle: region.handle, pages, generations });
      workers.add(worker);
      return new Promise((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.once('exit', () => workers.delete(worker));
      });
    },
    async close() {
      server.stop();
      for (const c of [source.control, source.bulk]) c.close();
      await Promise.all([requests.stop(1000, 'test over'), pushes.stop(1000, 'test over')]);
      await listener.close();
      uffd.close();
      await Promise.all([...workers].map((w) => w.terminate()));
      region.release();
    },
  };
}

/** Source and destination move through setup → device → postcopy-active. */
export async function switchover(pair: Pair): Promise<void> {
  pair.sourceState.moveTo('device');
  await pair.command({ type: 'machine-state', state: { pc: 0x8000_0000 } });
  pair.sourceState.moveTo('postcopy-active');
  await pair.command({ type: 'postcopy-run' });
}
