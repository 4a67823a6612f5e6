// Typed protocol failures. Every message that fails validation at the boundary
// becomes one of these, with a stable code and a WebSocket close code
// (4000 + the matching HTTP status, so a packet capture reads naturally).
import { PostcopyError, type ErrorDetails } from '../errors.ts';

export abstract class ProtocolError extends PostcopyError {
  abstract readonly closeCode: number;
}

/** Bytes that are not a well-formed message: bad msgpack, wrong field types, out-of-range values. */
export class ProtocolMalformedError extends ProtocolError {
  readonly closeCode = 4400;
  constructor(message: string, details?: ErrorDetails) {
    super('PROTO_ERR_MALFORMED', message, details);
  }
}

/** The shared migration token was missing or wrong. */
export class ProtocolAuthError extends ProtocolError {
  readonly closeCode = 4401;
  constructor(message: string, details?: ErrorDetails) {
    super('PROTO_ERR_AUTH', message, details);
  }
}

/** A well-formed message that is not allowed in the current migration state or on this channel. */
export class ProtocolStateError extends ProtocolError {
  readonly closeCode = 4409;
  constructor(message: string, details?: ErrorDetails) {
    super('PROTO_ERR_STATE', message, details);
  }
}

/** The two sides disagree about the machine: page size, RAM layout, vCPUs or guest image. */
export class ProtocolMismatchError extends ProtocolError {
  readonly closeCode = 4412;
  constructor(message: string, details?: ErrorDetails) {
    super('PROTO_ERR_MISMATCH', message, details);
  }
}

/** A frame larger than this kind of message may ever be; refused before decoding. */
export class ProtocolTooLargeError extends ProtocolError {
  readonly closeCode = 4413;
  constructor(message: string, details?: ErrorDetails) {
    super('PROTO_ERR_TOO_LARGE', message, details);
  }
}

/** The peer speaks another protocol version. */
export class ProtocolVersionError extends ProtocolError {
  readonly closeCode = 4426;
  constructor(message: string, details?: ErrorDetails) {
    super('PROTO_ERR_VERSION', message, details);
  }
}

/** The peer reported an error or cancelled; carries the peer's own code. */
export class ProtocolPeerError extends ProtocolError {
  readonly closeCode = 4500;
  readonly peerCode: string;
  constructor(peerCode: string, message: string) {
    super('PROTO_ERR_PEER', `the peer reported ${peerCode}: ${message}`);
    this.peerCode = peerCode;
  }
}
