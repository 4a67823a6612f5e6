// The project's base error. Every failure a user can see carries a stable
// `code` (e.g. UFFD_ERR_ACCESS, PROTO_ERR_STATE) and, where a syscall failed,
// its errno name and the syscall, so callers branch on codes, never on text.
export interface ErrorDetails {
  errno?: string;
  syscall?: string;
  advice?: string;
  cause?: unknown;
}

export class PostcopyError extends Error {
  readonly code: string;
  readonly errno: string | undefined;
  readonly syscall: string | undefined;
  readonly advice: string | undefined;

  constructor(code: string, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.code = code;
    this.errno = details.errno;
    this.syscall = details.syscall;
    this.advice = details.advice;
  }
}

/** The errno name ("EFAULT") of a Node system error, or undefined. */
export function errnoOf(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code)) return code;
  }
  return undefined;
}

const LISTEN_ADVICE: Record<string, string> = {
  EADDRINUSE: 'something else is listening there already (another postcopy source or destination?)',
  EADDRNOTAVAIL: 'that address is not one of this host’s',
  EACCES: 'ports below 1024 need root or CAP_NET_BIND_SERVICE',
};

/** A listening socket could not be opened; names the address, why, and what to do. */
export class ListenError extends PostcopyError {
  constructor(what: string, host: string, port: number, cause: unknown) {
    const errno = errnoOf(cause);
    const why = (errno && LISTEN_ADVICE[errno]) ?? (cause as Error).message;
    super('CLI_ERR_LISTEN', `${what} cannot listen on ${host}:${port}: ${why}; pick another --listen HOST:PORT (port 0 takes any free one)`, {
      errno,
      syscall: 'listen',
      cause,
    });
  }
}
