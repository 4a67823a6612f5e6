// What the source's main thread and its request thread tell each other.
import type { RamHandle } from '../guest/ram.ts';
import type { ChannelHandoff } from '../protocol/channel-handoff.ts';
import type { RequestShare } from './page-server.ts';

export interface RequestThreadData {
  readonly ram: RamHandle;
  readonly share: RequestShare;
  /** The migration state, as SharedMigrationState stores it. */
  readonly state: SharedArrayBuffer;
  readonly logLevel: string;
}

/** `id` names one handed-over urgent channel, so a late close of an old one is not taken for the current one's. */
export type ToRequestThread =
  | { readonly type: 'serve'; readonly data: RequestThreadData }
  | { readonly type: 'channel'; readonly id: number; readonly handoff: ChannelHandoff }
  | { readonly type: 'close-channel'; readonly id: number; readonly code: number; readonly reason: string }
  /** Close every channel, then say 'stopped'. */
  | { readonly type: 'stop'; readonly code: number; readonly reason: string };

export type FromRequestThread =
  /** `tid`: its kernel thread id, for per-thread figures. */
  | { readonly type: 'loaded'; readonly tid: number }
  /** Its rehearsal of the fault path is over (fault-path-rehearsal.ts), done or cut short. */
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
