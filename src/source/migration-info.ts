// What a migration reports, in QEMU query-migrate's vocabulary (camel-cased),
// and what the source hands the destination at the switchover.
import type { MigrationState } from '../protocol/state.ts';

export const MIGRATION_MODES = ['postcopy', 'precopy', 'hybrid'] as const;
export type MigrationMode = (typeof MIGRATION_MODES)[number];

export interface MigrationInfo {
  status: MigrationState;
  mode: MigrationMode;
  totalMs: number;
  setupMs: number;
  /** vCPUs stopped here → running there; null until the switchover is done. */
  downtimeMs: number | null;
  /** After each precopy round: how long the pages left would take to send (QEMU's expected-downtime); null before. */
  expectedDowntimeMs: number | null;
  transferredBytes: number;
  remainingPages: number;
  totalPages: number;
  normalPages: number;
  zeroPages: number;
  precopyPages: number;
  /** Megabits per second over the sending time, as QEMU's mbps. */
  mbps: number;
  postcopyRequests: number;
  precopyRounds: number;
  /** How much auto-converge slows the vCPUs now, in percent (QEMU's cpu-throttle-percentage). */
  cpuThrottlePercentage: number;
  /** The parameters in force (migrate_set_parameter may move them): QEMU's downtime-limit, max-bandwidth and max-postcopy-bandwidth, 0 for none. */
  downtimeLimitMs: number;
  maxBandwidth: number;
  maxPostcopyBandwidth: number;
  error: string | null;
}

/** The machine-config message's payload: what the destination builds the machine from. */
export interface MachineConfigPayload {
  /** The guest ELF, so the destination needs no copy of its own. */
  image: Uint8Array;
  guestArgs: string | null;
  /** Shared-storage disk image path, opened by the destination too. */
  disk: string | null;
}

/** The machine-state message's payload, at the switchover. */
export interface TransferredState {
  /** encodeMachineState() bytes: every vCPU and device. */
  machine: Uint8Array;
}
