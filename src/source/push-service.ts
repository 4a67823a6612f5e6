// What the source's push thread (push-worker.ts) does with the bulk channels
// it is handed: the postcopy push (bulk-push.ts) on the newest one, from
// guest RAM through the thread's own view, started and resumed by the main
// thread's 'push'. Its frames are written with writev(2) from guest RAM
// where it is, under a frame header (the source's vCPUs are stopped in
// postcopy, so the pages stay as they are): no copy of a page is made
// before the kernel's own.
import type { Logger } from '../log.ts';
import { adoptChannel, type ChannelHandoff } from '../protocol/channel-handoff.ts';
import type { MigrationChannel } from '../protocol/channel.ts';
import { PageBitmap } from '../protocol/page-bitmap.ts';
import { PAGE_FRAME_HEADER_BYTES } from '../protocol/page-frame.ts';
import { SharedMigrationState } from '../protocol/shared-state.ts';
import { PollLoop } from '../poll-loop.ts';
import { BulkPush } from './bulk-push.ts';
import { CursorHint } from './cursor-hint.ts';
import { FrameSender } from './frame-sender.ts';
import type { ChannelService, ServiceContext } from './page-thread-worker.ts';
import type { PushThreadData, ToPageThread } from './page-thread-messages.ts';
import { PopulatedPages } from './populated-pages.ts';
import { SendWindow } from './send-window.ts';
import { TransferCounters } from './transfer-counters.ts';

export class PushService implements ChannelService {
  private readonly push: BulkPush;
  private readonly populated: PopulatedPages | undefined;
  private readonly states: SharedMigrationState;
  private readonly loop: PollLoop;
  private readonly log: Logger;
  private readonly open = new Map<number, MigrationChannel>();
  private current: MigrationChannel | undefined;
  private started = false;
  private stopping = false;

  /** `loop`: the thread's poll loop, when something else (the rehearsal's sink) polls in it too. */
  constructor(
    private readonly data: PushThreadData,
    private readonly context: ServiceContext,
    loop?: PollLoop,
  ) {
    const { share } = data;
    this.log = context.log;
    this.loop = loop ?? new PollLoop(context.log);
    this.states = SharedMigrationState.attach(data.state);
    this.populated = data.ramAddress === undefined ? undefined : PopulatedPages.open(data.ramAddress, share.pageCount, share.pageSize);
    const sent = PageBitmap.attach(share.pageCount, share.sent);
    const counters = TransferCounters.attach(share.pushCounters);
    const frames = new FrameSender({
      ram: context.ramBytes(data.ram, share.pageCount * share.pageSize),
      pageSize: share.pageSize,
      sent,
      counters,
      populated: this.populated,
      ramAddress: data.ramAddress,
    });
    this.push = new BulkPush({
      frames,
      sent,
      cursor: CursorHint.attach(share.cursor),
      counters,
      pageCount: share.pageCount,
      maxPagesPerFrame: share.maxPagesPerFrame,
      maxZeroRunPages: share.maxZeroRunPages,
      largestFrame: PAGE_FRAME_HEADER_BYTES + share.maxPagesPerFrame * share.pageSize,
      framesPerTurn: share.framesPerTurn,
      maxPostcopyBandwidth: data.maxPostcopyBandwidth,
      later: (task, delayMs) => this.loop.later(task, delayMs),
    });
  }

  adopt(id: number, handoff: ChannelHandoff): void {
    const channel = adoptChannel(handoff, this.states, this.log, this.loop);
    this.open.set(id, channel);
    this.current = channel;
    this.push.attach(new SendWindow(channel, this.data.share.highWaterMark));
    channel.onClose((code, reason, error) => {
      this.open.delete(id);
      if (this.current === channel) {
        this.current = undefined;
        this.push.detach();
      }
      this.context.onChannelClosed(id, code, reason, error);
      if (this.stopping && this.open.size === 0) this.context.onStopped();
    });
    // A channel of a recovery that arrives after the main thread said to go on.
    if (this.started && this.states.state === 'postcopy-active') this.push.resume();
  }

  handle(m: ToPageThread): void {
    if (m.type === 'max-postcopy-bandwidth') this.push.setMaxPostcopyBandwidth(m.bytesPerSecond);
    else if (m.type === 'push' && this.started) this.push.resume();
    else if (m.type === 'push') {
      this.started = true;
      // RAM was written up to the switchover; never again once the push starts.
      this.populated?.refresh();
      this.push.start();
    }
  }

  closeChannel(id: number, code: number, reason: string): void {
    this.open.get(id)?.close(code, reason);
  }

  stop(code: number, reason: string): void {
    this.stopping = true;
    this.push.stop();
    this.populated?.close();
    if (this.open.size === 0) this.context.onStopped();
    for (const channel of this.open.values()) channel.close(code, reason);
  }
}
