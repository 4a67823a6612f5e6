// The migration state in shared memory, for the threads that check a
// channel's messages against it (the source's request thread, the
// destination's page threads). A mirror fed by messages could lag: the
// destination sends its first page request once it has read `resume`, which
// the source's main thread sends right after it moves to postcopy-active, and
// a request checked against the stale postcopy-paused would be refused as a
// protocol error; the source pushes bulk pages once the destination acked
// postcopy-run. Stored before the move's effects are sent, the shared state
// is never behind anything the peer can have seen.
import { MIGRATION_STATES, type MigrationState, type MigrationStateMachine } from './state.ts';

export class SharedMigrationState {
  readonly buffer: SharedArrayBuffer;
  private readonly slot: Int32Array;

  private constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.slot = new Int32Array(buffer, 0, 1);
  }

  /** Main thread: follows every move of `machine` from now on. */
  static mirror(machine: MigrationStateMachine): SharedMigrationState {
    const shared = new SharedMigrationState(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
    shared.store(machine.state);
    machine.onChange((_from, to) => shared.store(to));
    return shared;
  }

  /** A state that never moves: a rehearsal's, which plays a migration in postcopy. */
  static holding(state: MigrationState): SharedMigrationState {
    const shared = new SharedMigrationState(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
    shared.store(state);
    return shared;
  }

  /** Another thread: reads what the main thread's mirror stores. */
  static attach(buffer: SharedArrayBuffer): SharedMigrationState {
    return new SharedMigrationState(buffer);
  }

  get state(): MigrationState {
    return MIGRATION_STATES[Atomics.load(this.slot, 0)];
  }

  private store(state: MigrationState): void {
    Atomics.store(this.slot, 0, MIGRATION_STATES.indexOf(state));
  }
}
