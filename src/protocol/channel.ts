// One authenticated WebSocket of a migration (control, bulk or urgent):
// validates every incoming message once against the current state, and on a
// protocol error reports it to the peer, closes with the error's close code
// and tells the owner — the process stays up.
import type WebSocket from 'ws';
import type { Logger } from '../log.ts';
import { decodeMessage, encodeControl } from './codec.ts';
import { ProtocolError, ProtocolMalformedError } from './errors.ts';
import type { RamLayout } from './layout.ts';
import type { ChannelKind, ControlMessage, Message, Role } from './messages.ts';
import type { MigrationState } from './state.ts';

export type SendCallback = (err?: Error) => void;

/**
 * WebSocket's "going away": how a side that lost one of its channels closes
 * the others while it waits to resume (the source reconnects, the destination
 * waits for it). The peer may hear of it before it hears of the break.
 */
export const RECONNECTING_CLOSE_CODE = 1001;

/**
 * What a channel needs of its WebSocket: ws's own on the main threads, a
 * BlockingWebSocket (blocking-websocket.ts) on the fault-path threads.
 */
export interface ChannelSocket {
  readonly readyState: number;
  readonly CONNECTING: number;
  readonly OPEN: number;
  readonly bufferedAmount: number;
  readonly isPaused: boolean;
  send(data: Uint8Array, options: { binary: boolean }, cb?: SendCallback): void;
  /** One binary message of several parts, none copied (a BlockingWebSocket's); ws's WebSocket has none. */
  sendParts?(parts: readonly Uint8Array[], cb?: SendCallback): void;
  close(code?: number, reason?: string): void;
  pause(): void;
  resume(): void;
  on(event: 'message', listener: (data: WebSocket.RawData, isBinary: boolean) => void): unknown;
  on(event: 'close', listener: (code: number, reason: Buffer) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

export interface ChannelOptions {
  readonly kind: ChannelKind;
  /** This side's role. */
  readonly role: Role;
  /** The migration state each incoming message is checked against. */
  readonly state: () => MigrationState;
  readonly log: Logger;
}

// WebSocket close reasons are limited to 123 bytes.
function closeReason(message: string): string {
  const bytes = Buffer.from(message);
  return bytes.length <= 123 ? message : bytes.subarray(0, 120).toString('utf8').replace(/\uFFFD*$/, '') + '...';
}

export class MigrationChannel {
  readonly kind: ChannelKind;
  layout: RamLayout | undefined;
  private handshaking = true;
  private messageHandler: ((m: Message) => void) | undefined;
  private readonly closeHandlers: ((code: number, reason: string, error?: ProtocolError) => void)[] = [];
  private failure: ProtocolError | undefined;
  private released = false;

  constructor(
    readonly ws: ChannelSocket,
    private readonly options: ChannelOptions,
  ) {
    this.kind = options.kind;
    ws.on('message', (data, isBinary) => this.receive(data, isBinary));
    ws.on('close', (code, reason) => {
      if (this.released) return;
      for (const h of this.closeHandlers) h(code, reason.toString(), this.failure);
    });
    ws.on('error', (err) => options.log.warn({ channel: this.kind, err }, 'migration channel socket error'));
  }

  /** Messages after validation; only one consumer per channel. */
  onMessage(handler: (m: Message) => void): void {
    this.messageHandler = handler;
  }

  /** Called once when the socket closes; `error` is set when this side closed it for a protocol error. */
  onClose(handler: (code: number, reason: string, error?: ProtocolError) => void): void {
    this.closeHandlers.push(handler);
  }

  /** The handshake is done: from now on hello/welcome are refused and everything else allowed by the rules. */
  established(layout: RamLayout): void {
    this.handshaking = false;
    this.layout = layout;
  }

  get open(): boolean {
    return this.ws.readyState === this.ws.OPEN;
  }

  /** Bytes handed to ws but not yet to the kernel (ws's queue plus the socket's). */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  send(message: ControlMessage, cb?: SendCallback): void {
    this.sendBytes(encodeControl(message), cb);
  }

  /** A page frame (page-frame.ts) or pre-encoded message; never copied again by ws on our sockets. */
  sendBytes(bytes: Uint8Array, cb?: SendCallback): void {
    if (!this.open) {
      cb?.(new Error(`the ${this.kind} channel is closed`));
      return;
    }
    this.ws.send(bytes, { binary: true }, cb);
  }

  /** Whether sendParts writes its parts where they are; otherwise it copies them into one message. */
  get writesParts(): boolean {
    return this.ws.sendParts !== undefined;
  }

  /** One message of `parts`, which must stay unchanged until `cb` when writesParts. */
  sendParts(parts: readonly Uint8Array[], cb?: SendCallback): void {
    if (!this.open) {
      cb?.(new Error(`the ${this.kind} channel is closed`));
      return;
    }
    if (this.ws.sendParts) this.ws.sendParts(parts, cb);
    else this.ws.send(Buffer.concat(parts), { binary: true }, cb);
  }

  /** Stop reading: TCP backpressure then reaches the sender. */
  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  get paused(): boolean {
    return this.ws.isPaused;
  }

  /** Its socket now belongs to another thread (channel-handoff.ts): this object goes quiet for good. */
  release(): void {
    this.released = true;
    this.messageHandler = undefined;
  }

  /** Report `err` to the peer and close with its code. */
  fail(err: ProtocolError): void {
    if (this.failure) return;
    this.failure = err;
    this.options.log.warn({ channel: this.kind, code: err.code }, err.message);
    if (this.open) {
      this.send({ type: 'error', code: err.code, message: err.message });
      this.ws.close(err.closeCode, closeReason(err.message));
    }
  }

  close(code = 1000, reason = ''): void {
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) this.ws.close(code, closeReason(reason));
  }

  private receive(data: WebSocket.RawData, isBinary: boolean): void {
    if (this.failure || this.released) return;
    let message: Message;
    try {
      if (!isBinary || !(data instanceof Buffer)) {
        throw new ProtocolMalformedError(`the ${this.kind} channel carries binary msgpack frames only, got a text message`);
      }
      message = decodeMessage(data, {
        receiver: this.options.role,
        channel: this.kind,
        state: this.options.state(),
        handshaking: this.handshaking,
        layout: this.layout,
      });
    } catch (err) {
      this.fail(err instanceof ProtocolError ? err : new ProtocolMalformedError(String(err)));
      return;
    }
    this.messageHandler?.(message);
  }
}
