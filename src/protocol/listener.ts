// The destination's listening port: one WebSocket per channel (the URL path
// names it, hello confirms it), each authenticated and checked against the
// machine the destination expects, grouped by session. Fires once all three
// channels of a migration are up — again after a reconnect in postcopy-paused.
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { ListenError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { tokensEqual } from './auth.ts';
import { MigrationChannel } from './channel.ts';
import { ProtocolAuthError, ProtocolError, ProtocolMalformedError, ProtocolStateError } from './errors.ts';
import { checkIdentity, identityOf } from './identity.ts';
import { CHANNELS, type ChannelKind, type Hello, type MachineIdentity } from './messages.ts';
import { maxPageFrameBytes } from './page-frame.ts';
import type { MigrationStateMachine } from './state.ts';
import { MAX_CONTROL_BYTES } from './version.ts';

const HELLO_TIMEOUT_MS = 10_000;

export interface ChannelSet {
  readonly control: MigrationChannel;
  readonly bulk: MigrationChannel;
  readonly urgent: MigrationChannel;
}

export interface IncomingMigration {
  readonly session: string;
  readonly identity: MachineIdentity;
  readonly channels: ChannelSet;
  /** True when this is a reconnect after postcopy-paused. */
  readonly resume: boolean;
}

export interface ListenOptions {
  readonly host?: string;
  /** 0 for an ephemeral port. */
  readonly port?: number;
  readonly token: string;
  /** This host's page size; always checked. */
  readonly pageSize: number;
  /** What else the destination was told to expect (RAM, vCPUs, image); unset fields are taken from the source. */
  readonly expect?: Partial<MachineIdentity>;
  readonly state: MigrationStateMachine;
  /** Whether a source may come back (resume) now; by default only in postcopy-paused. */
  readonly resumable?: () => boolean;
  readonly log: Logger;
}

interface Session {
  readonly id: string;
  readonly identity: MachineIdentity;
  channels: Partial<Record<ChannelKind, MigrationChannel>>;
  resume: boolean;
}

export class MigrationListener {
  private session: Session | undefined;
  private handler: ((m: IncomingMigration) => void) | undefined;

  private constructor(
    private readonly server: WebSocketServer,
    private readonly options: ListenOptions,
  ) {
    server.on('connection', (ws, req) => this.accept(ws, req));
  }

  static listen(options: ListenOptions): Promise<MigrationListener> {
    return new Promise((resolve, reject) => {
      const server = new WebSocketServer({
        host: options.host ?? '127.0.0.1',
        port: options.port ?? 0,
        perMessageDeflate: false,
        // Capped before any byte is decoded; ws closes with 1009 beyond it.
        maxPayload: Math.max(MAX_CONTROL_BYTES, maxPageFrameBytes(options.pageSize)),
      });
      server.once('listening', () => resolve(new MigrationListener(server, options)));
      server.once('error', (err) => reject(new ListenError('the destination', options.host ?? '127.0.0.1', options.port ?? 0, err)));
    });
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  onMigration(handler: (m: IncomingMigration) => void): void {
    this.handler = handler;
  }

  /** No new connections; the migrations already accepted go on. */
  stopAccepting(): void {
    this.server.close();
  }

  /** Ends every connection too. */
  close(): Promise<void> {
    for (const client of this.server.clients) client.terminate();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const { log, state } = this.options;
    const kind = (req.url ?? '').replace(/^\/+/, '') as ChannelKind;
    const channel = new MigrationChannel(ws, {
      kind: CHANNELS.includes(kind) ? kind : 'control',
      role: 'destination',
      state: () => state.state,
      log,
    });
    if (!CHANNELS.includes(kind)) {
      channel.fail(new ProtocolMalformedError(`unknown channel path ${JSON.stringify(req.url).slice(0, 40)}; connect to /control, /bulk or /urgent`));
      return;
    }
    const timer = setTimeout(() => channel.fail(new ProtocolStateError(`no hello on the ${kind} channel within ${HELLO_TIMEOUT_MS} ms`)), HELLO_TIMEOUT_MS);
    timer.unref();
    channel.onClose(() => {
      clearTimeout(timer);
      if (this.session?.channels[kind] === channel) delete this.session.channels[kind];
    });
    channel.onMessage((message) => {
      clearTimeout(timer);
      if (message.type !== 'hello') return;
      try {
        this.admit(channel, message);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        channel.fail(err);
      }
    });
  }

  private admit(channel: MigrationChannel, hello: Hello): void {
    const { token, pageSize, expect, state } = this.options;
    if (!tokensEqual(hello.token, token)) {
      throw new ProtocolAuthError(`wrong migration token on the ${channel.kind} channel; pass the destination's token to the source (--token or POSTCOPY_TOKEN)`);
    }
    if (hello.channel !== channel.kind) {
      throw new ProtocolMalformedError(`hello names channel ${hello.channel} but was sent on /${channel.kind}`);
    }
    checkIdentity(hello, { ...expect, pageSize }, 'this destination');
    const session = this.joinSession(hello, channel.kind);
    checkIdentity(hello, session.identity, `migration ${session.id}`);
    session.channels[channel.kind] = channel;
    channel.established({ pageSize: hello.pageSize, ramBase: hello.ramBase, ramSize: hello.ramSize });
    channel.send({ type: 'welcome', channel: channel.kind, session: session.id, state: state.state });
    const { control, bulk, urgent } = session.channels;
    // Open, not just present: the previous connection's channels (one of them handed to a fault thread) stay listed until replaced.
    if (control?.open && bulk?.open && urgent?.open) {
      this.handler?.({ session: session.id, identity: session.identity, channels: { control, bulk, urgent }, resume: session.resume });
    }
  }

  private joinSession(hello: Hello, kind: ChannelKind): Session {
    const { state } = this.options;
    if (hello.resume !== (this.options.resumable?.() ?? state.state === 'postcopy-paused')) {
      throw new ProtocolStateError(
        hello.resume
          ? `cannot resume: this destination is ${state.state}, not postcopy-paused`
          : 'this destination is postcopy-paused; reconnect with resume (migrate-recover) to continue the same migration',
      );
    }
    if (!this.session) {
      if (hello.resume) throw new ProtocolStateError(`cannot resume migration ${hello.session}: this destination never received it`);
      this.session = { id: hello.session, identity: identityOf(hello), channels: {}, resume: false };
    }
    const session = this.session;
    if (session.id !== hello.session) {
      throw new ProtocolStateError(`this destination is already receiving migration ${session.id}; it takes one guest (got ${hello.session})`);
    }
    // A channel of the broken connection may not have seen its close yet; only a live one is a conflict.
    if (session.channels[kind]?.open) {
      throw new ProtocolStateError(`migration ${session.id} already has a ${kind} channel; connect each channel once`);
    }
    session.resume = hello.resume;
    return session;
  }
}
