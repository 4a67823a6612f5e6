// The source's side of the handshake: opens control, then bulk and urgent,
// to the destination's port, says hello on each and waits for welcome.
import WebSocket from 'ws';
import { PostcopyError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { MigrationChannel } from './channel.ts';
import { ProtocolError, ProtocolStateError } from './errors.ts';
import type { ChannelSet } from './listener.ts';
import type { ChannelKind, MachineIdentity } from './messages.ts';
import { errorFromPeer } from './peer-error.ts';
import type { MigrationStateMachine } from './state.ts';
import { MAX_CONTROL_BYTES } from './version.ts';

export interface ConnectOptions {
  /** ws://host:port of the destination. */
  readonly url: string;
  readonly token: string;
  readonly session: string;
  readonly identity: MachineIdentity;
  /** Reconnecting after postcopy-paused. */
  readonly resume?: boolean;
  readonly state: MigrationStateMachine;
  readonly log: Logger;
}

/**
 * Nothing answered as a postcopy destination at the URL: refused, unknown
 * host, or an HTTP server that is not one (the source's own control port is
 * the usual mix-up). ws's own words ("Unexpected server response: 401")
 * named neither the address nor what to do.
 */
export class DestinationUnreachableError extends PostcopyError {
  constructor(url: string, cause: Error) {
    const http = /^Unexpected server response: (\d+)$/.exec(cause.message);
    super(
      'MIGRATE_ERR_CONNECT',
      http
        ? `${url} answered HTTP ${http[1]}, not a postcopy destination's WebSocket: give the address \`postcopy destination\` is listening on (ws://HOST:PORT)`
        : `cannot connect to the destination at ${url}: ${cause.message}; is \`postcopy destination --listen HOST:PORT\` running there and reachable from this host?`,
      { cause },
    );
  }
}

// RFC 6455 masking protects browsers' proxies from cache poisoning; this is
// an authenticated point-to-point link, and a zero mask lets ws skip the
// copy-and-XOR of every page frame it sends (ws's skipMasking path).
function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

/** A source's WebSocket to one channel path of a destination (or of the push rehearsal's sink). */
export function sourceWebSocket(url: string, kind: ChannelKind): WebSocket {
  return new WebSocket(`${url.replace(/\/+$/, '')}/${kind}`, {
    perMessageDeflate: false,
    maxPayload: MAX_CONTROL_BYTES,
    generateMask: zeroMask,
  });
}

function connectChannel(kind: ChannelKind, options: ConnectOptions): Promise<MigrationChannel> {
  const { url, token, session, identity, state, log } = options;
  return new Promise((resolve, reject) => {
    const ws = sourceWebSocket(url, kind);
    const channel = new MigrationChannel(ws, { kind, role: 'source', state: () => state.state, log });
    let settled = false;
    const settle = (err: ProtocolError | Error | undefined): void => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(channel);
    };
    let opened = false;
    ws.once('error', (err) => settle(opened ? err : new DestinationUnreachableError(url, err)));
    ws.once('open', () => {
      opened = true;
      channel.send({ type: 'hello', channel: kind, token, session, resume: options.resume ?? false, ...identity });
    });
    channel.onMessage((message) => {
      if (message.type === 'error') {
        settle(errorFromPeer(message.code, message.message));
      } else if (message.type === 'welcome') {
        channel.established({ pageSize: identity.pageSize, ramBase: identity.ramBase, ramSize: identity.ramSize });
        settle(undefined);
      }
    });
    channel.onClose((code, reason, error) => {
      settle(error ?? new ProtocolStateError(`the destination closed the ${kind} channel during the handshake (${code}${reason ? `: ${reason}` : ''})`));
    });
  });
}

/** Connects the three channels of one migration; rejects with the destination's refusal, typed. */
export async function connectMigration(options: ConnectOptions): Promise<ChannelSet> {
  const control = await connectChannel('control', options);
  try {
    const [bulk, urgent] = await Promise.all([connectChannel('bulk', options), connectChannel('urgent', options)]);
    return { control, bulk, urgent };
  } catch (err) {
    control.close(1000, 'handshake failed');
    throw err;
  }
}
