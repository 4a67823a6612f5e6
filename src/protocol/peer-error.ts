// An `error` message from the peer, turned back into the error class its
// code names, so a refused handshake fails on this side with the same code.
import {
  ProtocolAuthError,
  ProtocolError,
  ProtocolMalformedError,
  ProtocolMismatchError,
  ProtocolPeerError,
  ProtocolStateError,
  ProtocolTooLargeError,
  ProtocolVersionError,
} from './errors.ts';

const BY_CODE: Record<string, new (message: string) => ProtocolError> = {
  PROTO_ERR_AUTH: ProtocolAuthError,
  PROTO_ERR_MALFORMED: ProtocolMalformedError,
  PROTO_ERR_MISMATCH: ProtocolMismatchError,
  PROTO_ERR_STATE: ProtocolStateError,
  PROTO_ERR_TOO_LARGE: ProtocolTooLargeError,
  PROTO_ERR_VERSION: ProtocolVersionError,
};

export function errorFromPeer(code: string, message: string): ProtocolError {
  return errorOfCode(code, `the peer refused: ${message}`);
}

/** The error class `code` names, rebuilt on another thread (errors cross postMessage as plain data). */
export function errorOfCode(code: string, message: string): ProtocolError {
  const Known = BY_CODE[code];
  return Known ? new Known(message) : new ProtocolPeerError(code, message);
}
