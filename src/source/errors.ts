// Why an outgoing migration ended without completing.
import { PostcopyError } from '../errors.ts';

/** Cancelled before the switchover (by the user, the destination, or non-convergence); the guest runs on here. */
export class MigrationCancelledError extends PostcopyError {
  constructor(message: string) {
    super('MIGRATE_ERR_CANCELLED', message);
  }
}

/** The migration broke; see the message for which side and why. */
export class MigrationFailedError extends PostcopyError {
  constructor(message: string, cause?: unknown) {
    super('MIGRATE_ERR_FAILED', message, { cause });
  }
}

/** A monitor command that cannot be carried out now (e.g. a second migrate while one runs). */
export class MonitorCommandError extends PostcopyError {
  constructor(message: string) {
    super('MONITOR_ERR_COMMAND', message);
  }
}
