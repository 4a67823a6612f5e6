// The migration state, named as QEMU's MigrationStatus/PostcopyState names
// it, and the legal moves between states. Both sides keep one; every incoming
// message is checked against it (see rules.ts) so a peer cannot, say, start
// the guest before its state arrived.
import { ProtocolStateError } from './errors.ts';

export const MIGRATION_STATES = [
  'setup',
  'precopy-active',
  'device',
  'postcopy-active',
  'postcopy-paused',
  'completed',
  'failed',
  'cancelled',
] as const;

export type MigrationState = (typeof MIGRATION_STATES)[number];

const NEXT: Record<MigrationState, readonly MigrationState[]> = {
  setup: ['precopy-active', 'device', 'failed', 'cancelled'],
  'precopy-active': ['device', 'failed', 'cancelled'],
  // Straight to completed when precopy sent everything before switchover.
  // Paused when the connection breaks after the state was taken: the source
  // sent postcopy-run with it and reconnects, and 'resume' starts the guest.
  device: ['postcopy-active', 'postcopy-paused', 'completed', 'failed', 'cancelled'],
  // No cancel once the guest runs on the destination: its state is split
  // between the two sides and only finishing (or failing) is left.
  'postcopy-active': ['postcopy-paused', 'completed', 'failed'],
  'postcopy-paused': ['postcopy-active', 'failed'],
  completed: [],
  failed: [],
  cancelled: [],
};

export function isTerminal(state: MigrationState): boolean {
  return NEXT[state].length === 0;
}

export class MigrationStateMachine {
  private current: MigrationState = 'setup';
  private readonly listeners: ((from: MigrationState, to: MigrationState) => void)[] = [];

  get state(): MigrationState {
    return this.current;
  }

  canMoveTo(to: MigrationState): boolean {
    return NEXT[this.current].includes(to);
  }

  moveTo(to: MigrationState): void {
    if (!this.canMoveTo(to)) {
      throw new ProtocolStateError(
        `cannot move the migration from ${this.current} to ${to}; from ${this.current} only ` +
          `${NEXT[this.current].join(', ') || 'nothing (it is over)'} may follow`,
      );
    }
    const from = this.current;
    this.current = to;
    for (const l of this.listeners) l(from, to);
  }

  onChange(listener: (from: MigrationState, to: MigrationState) => void): void {
    this.listeners.push(listener);
  }
}
