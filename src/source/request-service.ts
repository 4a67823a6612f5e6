// What the source's request thread does with the urgent channels it is
// handed: answers each page request from the urgent queue, serving only the
// newest channel (an older one is a connection that is going away). The
// thread's rehearsal (fault-path-rehearsal.ts) answers through one of these
// too: V8 optimizes a closure per place in the source that makes it, and a
// rehearsal through closures of its own left the migration's to be compiled
// on the helper threads during postcopy.
import type { Logger } from '../log.ts';
import { adoptChannel, type ChannelHandoff, type StateSource } from '../protocol/channel-handoff.ts';
import type { MigrationChannel } from '../protocol/channel.ts';
import type { ProtocolError } from '../protocol/errors.ts';
import type { PollLoop } from '../poll-loop.ts';
import type { UrgentQueue } from './urgent-queue.ts';

export interface RequestServiceOptions {
  readonly queue: UrgentQueue;
  /** What each message is checked against; requests are answered only in postcopy-active. */
  readonly states: StateSource;
  readonly loop: PollLoop;
  readonly log: Logger;
  /** An adopted channel closed, with `error` when this side closed it for a protocol error. */
  readonly onChannelClosed: (id: number, code: number, reason: string, error?: ProtocolError) => void;
  /** After stop(): every channel is closed. */
  readonly onStopped: () => void;
}

export class RequestService {
  /** Channels not yet closed, by id; only the newest one is served. */
  private readonly open = new Map<number, MigrationChannel>();
  private current: MigrationChannel | undefined;
  private stopping = false;

  constructor(private readonly options: RequestServiceOptions) {}

  adopt(id: number, handoff: ChannelHandoff): void {
    const { queue, states, log, loop, onChannelClosed, onStopped } = this.options;
    const channel = adoptChannel(handoff, states, log, loop);
    this.open.set(id, channel);
    this.current = channel;
    queue.attach(channel);
    channel.onMessage((m) => {
      if (m.type !== 'page-request' || states.state !== 'postcopy-active') return;
      queue.request(m.pages);
      loop.awaitNextEvent();
    });
    channel.onClose((code, reason, error) => {
      this.open.delete(id);
      if (this.current === channel) {
        this.current = undefined;
        queue.detach();
      }
      onChannelClosed(id, code, reason, error);
      if (this.stopping && this.open.size === 0) onStopped();
    });
  }

  closeChannel(id: number, code: number, reason: string): void {
    this.open.get(id)?.close(code, reason);
  }

  /** Closes every channel; onStopped() follows once all are closed. */
  stop(code: number, reason: string): void {
    this.stopping = true;
    if (this.open.size === 0) this.options.onStopped();
    for (const channel of this.open.values()) channel.close(code, reason);
  }
}
