// Errors of the guest machine, one class per failing operation, each with a
// stable code (see src/errors.ts). Messages say what was attempted, what is
// wrong and, where it helps, what to do.
import { PostcopyError, type ErrorDetails } from '../errors.ts';

/** A guest image (ELF) that cannot be loaded. */
export class GuestImageError extends PostcopyError {
  constructor(message: string, details?: ErrorDetails) {
    super('GUEST_ERR_IMAGE', message, details);
  }
}

/** Machine options that cannot describe a machine (RAM size, vCPU count, args, disk). */
export class GuestConfigError extends PostcopyError {
  constructor(message: string, details?: ErrorDetails) {
    super('GUEST_ERR_CONFIG', message, details);
  }
}

/** A saved machine state that cannot be restored; `field` names the offending part. */
export class GuestStateError extends PostcopyError {
  readonly field: string;
  constructor(field: string, message: string, details?: ErrorDetails) {
    super('GUEST_ERR_STATE', `machine state field ${field}: ${message}`, details);
    this.field = field;
  }
}

/** A machine operation called in a lifecycle phase that does not allow it. */
export class GuestLifecycleError extends PostcopyError {
  constructor(message: string, details?: ErrorDetails) {
    super('GUEST_ERR_LIFECYCLE', message, details);
  }
}

/** A vCPU worker that failed (an exception inside the interpreter or a device). */
export class GuestVcpuError extends PostcopyError {
  readonly hart: number;
  constructor(hart: number, message: string, details?: ErrorDetails) {
    super('GUEST_ERR_VCPU', `vCPU ${hart}: ${message}`, details);
    this.hart = hart;
  }
}

/** The disk image of the block device could not be opened or created. */
export class GuestDiskError extends PostcopyError {
  constructor(message: string, details?: ErrorDetails) {
    super('GUEST_ERR_DISK', message, details);
  }
}
