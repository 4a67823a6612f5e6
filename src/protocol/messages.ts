// The messages of the migration protocol, as the rest of the code sees them
// after validation. Control messages travel as msgpack maps {v, type, ...};
// page frames travel as a fixed binary header plus raw pages (page-frame.ts).
// The protocol version is the envelope's `v`, checked on every message.
import type { PageIndex } from './layout.ts';
import type { EncodedPageSet } from './page-bitmap.ts';
import type { MigrationState } from './state.ts';

export const CHANNELS = ['control', 'bulk', 'urgent'] as const;
export type ChannelKind = (typeof CHANNELS)[number];

export type Role = 'source' | 'destination';

/** What the source claims about the machine it is sending; checked by the destination. */
export interface MachineIdentity {
  readonly pageSize: number;
  readonly ramBase: number;
  readonly ramSize: number;
  readonly vcpus: number;
  /** sha256 of the guest ELF, lowercase hex. */
  readonly imageSha256: string;
}

/** First message on every channel, source → destination. */
export interface Hello extends MachineIdentity {
  readonly type: 'hello';
  readonly channel: ChannelKind;
  readonly token: string;
  /** Random id shared by the three channels of one migration; reused to resume. */
  readonly session: string;
  /** True when reconnecting after postcopy-paused. */
  readonly resume: boolean;
}

/** Reply to hello, destination → source. */
export interface Welcome {
  readonly type: 'welcome';
  readonly channel: ChannelKind;
  readonly session: string;
  readonly state: MigrationState;
}

/** Source → destination: precopy rounds begin; page frames on bulk now carry RAM. */
export interface PrecopyBegin {
  readonly type: 'precopy-begin';
}

/**
 * Destination → source: guest RAM is registered and the vCPU workers are
 * loaded, so the guest can start here the moment its state arrives. The source
 * stops its vCPUs only after this, keeping the destination's start-up out of
 * the downtime.
 */
export interface Ready {
  readonly type: 'ready';
}

/**
 * Source → destination, on control after precopy pages went on bulk: ack once
 * the precopy pages received so far number `pages` (all the source sent) and
 * are in RAM. A discard or the machine state only ever follows that ack, so no
 * precopy page can land after the discard that drops it or the vCPUs that read it.
 */
export interface PrecopySync {
  readonly type: 'precopy-sync';
  /** Pages in precopy frames sent on bulk since the migration began. */
  readonly pages: number;
}

/** Source → destination: pages sent earlier but dirtied since; drop them so they fault again. */
export interface Discard {
  readonly type: 'discard';
  /** [start, length, ...] runs, validated within RAM. */
  readonly runs: readonly number[];
}

/**
 * Source → destination, in setup: what to build the machine from (image,
 * guest arguments, disk; opaque to the protocol), so building it stays out
 * of the downtime.
 */
export interface MachineConfig {
  readonly type: 'machine-config';
  readonly config: unknown;
}

/** Source → destination: vCPU and device state (opaque to the protocol). Enters `device`. */
export interface MachineState {
  readonly type: 'machine-state';
  readonly state: unknown;
}

/** Source → destination: start the vCPUs; missing pages are now fetched on demand. */
export interface PostcopyRun {
  readonly type: 'postcopy-run';
}

/** Destination → source: every page is present; the source may release its copy. */
export interface Complete {
  readonly type: 'complete';
  readonly pages: number;
}

/** Destination → source after a reconnect: the pages it already holds. */
export interface Recover {
  readonly type: 'recover';
  readonly received: EncodedPageSet;
}

/** Source → destination: recovery bitmap applied; postcopy continues. */
export interface Resume {
  readonly type: 'resume';
}

/** Either way: the named message was applied. */
export interface Ack {
  readonly type: 'ack';
  readonly of: ControlMessage['type'];
}

/** Either way: give up the migration (only before postcopy-active). */
export interface Cancel {
  readonly type: 'cancel';
  readonly reason: string;
}

/** Either way, any channel: what went wrong, then the sender closes. */
export interface ErrorReport {
  readonly type: 'error';
  readonly code: string;
  readonly message: string;
}

/** Destination → source on urgent: pages vCPUs are blocked on. */
export interface PageRequest {
  readonly type: 'page-request';
  readonly pages: readonly PageIndex[];
}

/** Source → destination on bulk or urgent: `count` pages from `start`. */
export interface PageData {
  readonly type: 'pages';
  readonly start: PageIndex;
  readonly count: number;
  /** count * pageSize bytes, a view into the received frame (never copied). */
  readonly payload: Uint8Array;
  readonly precopy: boolean;
}

/** Source → destination on bulk or urgent: `count` pages of zeros, no payload. */
export interface ZeroRun {
  readonly type: 'zero-run';
  readonly start: PageIndex;
  readonly count: number;
  readonly precopy: boolean;
}

export type ControlMessage =
  | Hello
  | Welcome
  | PrecopyBegin
  | Ready
  | PrecopySync
  | Discard
  | MachineConfig
  | MachineState
  | PostcopyRun
  | Complete
  | Recover
  | Resume
  | Ack
  | Cancel
  | ErrorReport
  | PageRequest;

export type PageFrame = PageData | ZeroRun;

export type Message = ControlMessage | PageFrame;

export type MessageType = Message['type'];
