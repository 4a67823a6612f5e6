// What the source's main thread and its page threads (the request thread,
// the push thread) tell each other.
import type { RamHandle } from '../guest/ram.ts';
import type { ChannelHandoff } from '../protocol/channel-handoff.ts';
import type { PageShare } from './page-server.ts';

export interface PageThreadData {
  readonly ram: RamHandle;
  readonly share: PageShare;
  /** The migration state, as SharedMigrationState stores it. */
  readonly state: SharedArrayBuffer;
  readonly logLevel: string;
}

/** The push thread's extra: where RAM is mapped (pages never populated are zero: populated-pages.ts), and its cap. */
export interface PushThreadData extends PageThreadData {
  readonly ramAddress: number | undefined;
  readonly maxPostcopyBandwidth: number | undefined;
}

/** `id` names one handed-over channel, so a late close of an old one is not taken for the current one's. */
export type ToPageThread<Data extends PageThreadData = PageThreadData> =
  | { readonly type: 'serve'; readonly data: Data }
  | { readonly type: 'channel'; readonly id: number; readonly handoff: ChannelHandoff }
  | { readonly type: 'close-channel'; readonly id: number; readonly code: number; readonly reason: string }
  /** Push thread: push every page not yet sent, on its newest channel; again after a recovery. */
  | { readonly type: 'push' }
  /** Push thread: max-postcopy-bandwidth from now on (undefined: none). */
  | { readonly type: 'max-postcopy-bandwidth'; readonly bytesPerSecond: number | undefined }
  /** Close every channel, then say 'stopped'. */
  | { readonly type: 'stop'; readonly code: number; readonly reason: string };

export type FromPageThread =
  /** `tid`: its kernel thread id, for per-thread figures. */
  | { readonly type: 'loaded'; readonly tid: number }
  /** Its rehearsal is over, done or cut short. */
  | { readonly type: 'rehearsed' }
  | {
      readonly type: 'channel-closed';
      readonly id: number;
      readonly code: number;
      readonly reason: string;
      readonly error?: { readonly code: string; readonly message: string };
    }
  | { readonly type: 'stopped' }
  | { readonly type: 'log'; readonly line: string };
