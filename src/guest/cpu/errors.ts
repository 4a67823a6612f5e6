// Errors raised by the vCPU core. Each carries a stable code so the machine and
// the CLI can branch on it (a bad saved state is a user error; a bad bus is ours).
import { PostcopyError, type ErrorDetails } from '../../errors.ts';

/** A saved hart state that cannot be restored (wrong version, bad field). */
export class HartStateError extends PostcopyError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('GUEST_ERR_STATE', message, details);
  }
}

/** A Hart was built over a bus whose RAM, dirty log or page gate do not fit together. */
export class HartBusError extends PostcopyError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('GUEST_ERR_BUS', message, details);
  }
}

/** A caller passed an argument the hart cannot honour (e.g. a negative budget). */
export class HartArgumentError extends PostcopyError {
  constructor(message: string, details: ErrorDetails = {}) {
    super('GUEST_ERR_ARGUMENT', message, details);
  }
}
