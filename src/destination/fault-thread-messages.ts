// What the destination's main thread and its fault thread tell each other.
import type { ChannelHandoff } from '../protocol/channel-handoff.ts';
import type { MigrationState } from '../protocol/state.ts';
import type { AccessPath, UffdFeatures } from '../uffd/userfaultfd.ts';
import type { FaultFigures } from './fault-handler.ts';
import type { LatencySummary } from './fault-stats.ts';
import type { PlacerFigures } from './page-placer.ts';
import type { FaultEvent } from './uffd-port.ts';

/**
 * 'faults': reads the userfaultfd and serves the urgent channel (QEMU's fault
 * thread). 'bulk': places precopy pages and the background push from the bulk
 * channel (QEMU's listen thread); it never reads the userfaultfd, only places
 * through it.
 */
export type PageThreadRole = 'faults' | 'bulk';

export interface FaultThreadData {
  readonly role: PageThreadRole;
  /** A duplicate of the userfaultfd, for this thread alone to read. */
  readonly uffdFd: number;
  readonly path: AccessPath;
  readonly features: UffdFeatures;
  readonly regionAddress: number;
  readonly regionLength: number;
  readonly pageSize: number;
  /** The received-pages bitmap the main thread's placer also writes. */
  readonly received: SharedArrayBuffer;
  readonly state: MigrationState;
  /** The main thread's state as it moves (SharedMigrationState): what incoming messages are checked against. */
  readonly sharedState: SharedArrayBuffer;
  readonly logLevel: string;
}

export type ToFaultThread =
  | { readonly type: 'serve'; readonly data: FaultThreadData }
  /** `id` names the channel in its 'channel-closed'. */
  | { readonly type: 'channel'; readonly id: number; readonly handoff: ChannelHandoff }
  | { readonly type: 'close-channel'; readonly code: number; readonly reason: string }
  | { readonly type: 'state'; readonly state: MigrationState }
  /** A fault the main thread read itself (draining on EAGAIN). */
  | { readonly type: 'fault'; readonly event: FaultEvent }
  | { readonly type: 'figures' }
  /** The source's precopy-sync: answer 'precopy-placed' once this many precopy pages are in RAM. */
  | { readonly type: 'precopy-sync'; readonly pages: number }
  /** Ends its rehearsal at the next round trip: close() terminates the thread only after 'rehearsed'. */
  | { readonly type: 'end' };

export interface FaultThreadFigures {
  readonly faults: FaultFigures;
  readonly placer: PlacerFigures;
  readonly latencyUs: LatencySummary;
  readonly blocktimeMs: number;
}

export type FromFaultThread =
  /** Its modules are loaded: it can serve at once. `tid`: its kernel thread id, for per-thread figures. */
  | { readonly type: 'loaded'; readonly tid: number }
  /** Its rehearsal of the fault path is over (fault-path-rehearsal.ts), done or cut short. */
  | { readonly type: 'rehearsed' }
  | { readonly type: 'all-present' }
  /** At least `pages` precopy pages are in RAM (answers 'precopy-sync'). */
  | { readonly type: 'precopy-placed'; readonly pages: number }
  | { readonly type: 'channel-closed'; readonly id: number; readonly code: number; readonly reason: string; readonly error?: { readonly code: string; readonly message: string } }
  | { readonly type: 'figures'; readonly figures: FaultThreadFigures }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'log'; readonly line: string };
