// A page channel's WebSocket on a page thread (urgent on both sides, bulk
// on the destination's bulk thread and the source's push thread): the same
// RFC 6455 frames, parsed by ws's own Receiver, but moved by read(2) and
// writev(2) when the thread's PollLoop says the socket is ready, not by a
// net.Socket on libuv. A page request or a page then goes out in the
// wake-up that produced it, and an arriving one is handled in the wake-up
// that read it.
//
// It has the part of ws's WebSocket that MigrationChannel uses, with the
// same meaning: send callbacks fire once a frame reached the kernel, a close
// handshake answers the peer's close frame, and 'close' comes last, once.
import { EventEmitter } from 'node:events';
import * as ws from 'ws';
import type { PollSource } from '../poll-loop.ts';
import { loadNative } from '../uffd/native.ts';
import type { ChannelSocket } from './channel.ts';

interface ReceiverInternals extends EventEmitter {
  _write(chunk: Buffer, encoding: string, cb: (err?: Error | null) => void): void;
  /** Received bytes not yet parsed, and the fragments of an unfinished message: views of our slabs. */
  readonly _buffers: readonly Buffer[];
  readonly _fragments: readonly Buffer[];
}
type ReceiverConstructor = new (options: {
  allowSynchronousEvents: boolean;
  binaryType: 'nodebuffer';
  isServer: boolean;
  maxPayload: number;
  skipUTF8Validation: boolean;
}) => ReceiverInternals;
// Exported by ws (its ESM entry names it) but absent from @types/ws.
const { Receiver } = ws as unknown as { Receiver: ReceiverConstructor };

const OPCODE_BINARY = 0x2;
const OPCODE_CLOSE = 0x8;
const OPCODE_PONG = 0xa;
// ws's own default: a close handshake may take 30 s before the socket is dropped.
const CLOSE_TIMEOUT_MS = 30_000;
// Reads land in a slab and messages are views of it. A full slab is retired
// and reused once the Receiver holds no part of it (the fragments of an
// unfinished message); a fresh 512 KiB buffer per slab made the bulk thread's
// garbage collector run every few tens of milliseconds, on helper threads the
// push needs. So a message's bytes are valid only while its 'message'
// listeners run, which is how the page threads use them: placed, then dropped.
//
// The Receiver is given whole frames only, each in one piece of one slab: a
// frame it got in two pieces it would copy into a fresh buffer, and fresh
// memory is page faults, which on a virtual machine cost the bulk thread more
// than placing the pages did. A frame's head that reached the end of a slab
// moves to the start of the next one instead.
const SLAB_BYTES = 512 * 1024;
const MIN_READ_BYTES = 64 * 1024;
const MAX_SPARE_SLABS = 4;
// The largest header: 2 bytes, a 64-bit length, a mask.
const MAX_HEADER_BYTES = 14;
const VALID_OPCODES = new Set([0x0, 0x1, 0x2, 0x8, 0x9, 0xa]);

/**
 * An RFC 6455 frame header for a payload of `length` bytes, which follows it
 * unchanged. Client frames are masked with zeros, as in connect.ts: masking
 * is for browsers' sake, and a zero mask leaves the payload as it is, so a
 * frame's payload may be written straight from guest RAM, in parts, with no
 * copy (ws's Sender.frame takes one contiguous payload).
 */
function frameHeader(opcode: number, length: number, mask: boolean): Buffer {
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const header = Buffer.alloc(2 + lengthBytes + (mask ? 4 : 0));
  header[0] = 0x80 | opcode;
  header[1] = (mask ? 0x80 : 0) | (lengthBytes === 0 ? length : lengthBytes === 2 ? 126 : 127);
  if (lengthBytes === 2) header.writeUInt16BE(length, 2);
  else if (lengthBytes === 8) header.writeUIntBE(length, 4, 6);
  return header;
}

function closeBody(code: number | undefined, reason: string): Buffer {
  if (code === undefined) return Buffer.alloc(0);
  const body = Buffer.allocUnsafe(2 + Buffer.byteLength(reason));
  body.writeUInt16BE(code, 0);
  body.write(reason, 2);
  return body;
}

interface Pending {
  chunks: Uint8Array[];
  bytes: number;
  cb?: (err?: Error) => void;
}

export interface BlockingWebSocketOptions {
  readonly fd: number;
  /** The side that accepted the connection: it reads masked frames and sends unmasked ones. */
  readonly isServer: boolean;
  readonly maxPayload: number;
}

export class BlockingWebSocket extends EventEmitter implements ChannelSocket, PollSource {
  readonly CONNECTING = 0;
  readonly OPEN = 1;
  readonly CLOSING = 2;
  readonly CLOSED = 3;
  readyState = this.OPEN;
  readonly fd: number;
  private readonly native = loadNative();
  private readonly receiver: ReceiverInternals;
  private readonly mask: boolean;
  private readonly queue: Pending[] = [];
  private queuedBytes = 0;
  private reading = true;
  private slab: Buffer = Buffer.allocUnsafeSlow(SLAB_BYTES);
  private slabUsed = 0;
  /** Where in the slab the bytes not yet given to the Receiver (a frame's head) start. */
  private slabFed = 0;
  private readonly maxFrameBytes: number;
  /** Full slabs the Receiver may still hold views of, and slabs free for reuse. */
  private retired: Buffer[] = [];
  private readonly spare: Buffer[] = [];
  private closeFrameSent = false;
  private closeFrameReceived = false;
  private closeCode = 1006;
  private closeReason = Buffer.alloc(0);
  private closeTimer: NodeJS.Timeout | undefined;

  constructor(options: BlockingWebSocketOptions) {
    super();
    this.fd = options.fd;
    this.mask = !options.isServer;
    this.maxFrameBytes = options.maxPayload + MAX_HEADER_BYTES;
    this.receiver = new Receiver({
      allowSynchronousEvents: true,
      binaryType: 'nodebuffer',
      isServer: options.isServer,
      maxPayload: options.maxPayload,
      skipUTF8Validation: true,
    });
    this.receiver.on('message', (data: Buffer, isBinary: boolean) => this.emit('message', data, isBinary));
    // Copied: a pong may wait in the send queue after its slab is reused.
    this.receiver.on('ping', (data: Buffer) => this.sendControl(Buffer.from(data), OPCODE_PONG));
    this.receiver.on('conclude', (code: number, reason: Buffer) => this.onCloseFrame(code, reason));
  }

  get bufferedAmount(): number {
    return this.queuedBytes;
  }

  get isPaused(): boolean {
    return !this.reading;
  }

  get pollEvents(): number {
    const { POLLIN, POLLOUT } = this.native.constants;
    return (this.reading ? POLLIN : 0) | (this.queue.length > 0 ? POLLOUT : 0);
  }

  pause(): void {
    this.reading = false;
  }

  resume(): void {
    this.reading = true;
  }

  send(data: Uint8Array, _options: { binary: boolean }, cb?: (err?: Error) => void): void {
    this.sendParts([data], cb);
  }

  /** One binary message of `parts`, written in order with no copy: each must stay unchanged until `cb`. */
  sendParts(parts: readonly Uint8Array[], cb?: (err?: Error) => void): void {
    if (this.readyState !== this.OPEN) {
      cb?.(new Error(`WebSocket is not open: readyState ${this.readyState}`));
      return;
    }
    let length = 0;
    for (const part of parts) length += part.length;
    this.sendFrame(parts, length, OPCODE_BINARY, cb);
  }

  close(code?: number, reason = ''): void {
    if (this.readyState === this.CLOSED) return;
    if (!this.closeFrameSent) {
      this.closeFrameSent = true;
      this.sendControl(closeBody(code, reason), OPCODE_CLOSE);
    }
    if (this.closeFrameReceived) {
      this.finish();
      return;
    }
    this.readyState = this.CLOSING;
    this.closeTimer ??= setTimeout(() => this.finish(), CLOSE_TIMEOUT_MS);
  }

  ready(revents: number): void {
    const { POLLIN, POLLOUT, POLLERR, POLLHUP, POLLNVAL } = this.native.constants;
    if (revents & POLLNVAL) {
      this.fail(new Error("the channel's socket descriptor is not open"));
      return;
    }
    if (revents & POLLOUT) this.flush();
    // A failed write closed the descriptor, and its number may already name another file.
    if (revents & (POLLIN | POLLERR | POLLHUP) && this.readyState !== this.CLOSED) this.read();
  }

  private read(): void {
    const head = this.slabUsed - this.slabFed;
    const wanted = Math.max(MIN_READ_BYTES, (this.frameBytes(this.slabFed) ?? MAX_HEADER_BYTES) - head);
    if (this.slab.length - this.slabUsed < wanted) this.nextSlab(head + wanted);
    const space = this.slab.subarray(this.slabUsed);
    const n = this.native.readBytes(this.fd, space);
    if (n === -this.native.constants.EAGAIN || n === -this.native.constants.EINTR) return;
    if (n < 0) {
      this.fail(Object.assign(new Error(`reading the channel's socket failed: errno ${-n}`), { errno: -n }));
      return;
    }
    if (n === 0) {
      this.finish();
      return;
    }
    this.slabUsed += n;
    let end = this.slabFed;
    for (let bytes = this.frameBytes(end); bytes !== undefined && end + bytes <= this.slabUsed; bytes = this.frameBytes(end)) end += bytes;
    if (end === this.slabFed) return;
    const frames = this.slab.subarray(this.slabFed, end);
    this.slabFed = end;
    this.receiver._write(frames, 'buffer', (err) => {
      if (err) this.fail(err, (err as { code?: string }).code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 1009 : 1002);
    });
    if (this.retired.length > 0) this.reuseRetiredSlabs();
  }

  /**
   * The length of the frame that starts at `offset` of the slab, header
   * included; undefined until its header is all there. A header the Receiver
   * will refuse counts as complete at once, so the refusal comes without
   * waiting for a payload that may never come.
   */
  private frameBytes(offset: number): number | undefined {
    const have = this.slabUsed - offset;
    if (have < 2) return undefined;
    const first = this.slab[offset];
    const second = this.slab[offset + 1];
    let length = second & 0x7f;
    let header = 2;
    if (length === 126) {
      if (have < 4) return undefined;
      length = this.slab.readUInt16BE(offset + 2);
      header = 4;
    } else if (length === 127) {
      if (have < 10) return undefined;
      length = this.slab.readUInt32BE(offset + 2) * 2 ** 32 + this.slab.readUInt32BE(offset + 6);
      header = 10;
    }
    const masked = (second & 0x80) !== 0;
    if (masked) header += 4;
    const refused = masked === this.mask || (first & 0x70) !== 0 || !VALID_OPCODES.has(first & 0x0f) || header + length > this.maxFrameBytes;
    return refused ? Math.min(have, header) : header + length;
  }

  // Moves the unfed head to the start of a slab with room for `bytes`.
  private nextSlab(bytes: number): void {
    const head = this.slab.subarray(this.slabFed, this.slabUsed);
    this.retired.push(this.slab);
    const fits = this.spare.findIndex((slab) => slab.length >= bytes);
    const next = fits >= 0 ? this.spare.splice(fits, 1)[0] : Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, bytes));
    head.copy(next);
    this.slab = next;
    this.slabFed = 0;
    this.slabUsed = head.length;
  }

  private reuseRetiredSlabs(): void {
    const held = new Set<ArrayBufferLike>();
    for (const view of this.receiver._buffers) held.add(view.buffer);
    for (const view of this.receiver._fragments) held.add(view.buffer);
    this.retired = this.retired.filter((slab) => {
      if (held.has(slab.buffer)) return true;
      this.spare.push(slab);
      return false;
    });
    // Slabs in use at once are a few: more spares only hold memory.
    if (this.spare.length > MAX_SPARE_SLABS) this.spare.splice(0, this.spare.length - MAX_SPARE_SLABS);
  }

  private onCloseFrame(code: number, reason: Buffer): void {
    this.closeFrameReceived = true;
    this.closeCode = code;
    this.closeReason = Buffer.from(reason);
    if (this.closeFrameSent) this.finish();
    else this.close(code === 1005 ? undefined : code, reason.toString());
  }

  private sendControl(body: Buffer, opcode: number): void {
    this.sendFrame([body], body.length, opcode);
  }

  private sendFrame(parts: readonly Uint8Array[], length: number, opcode: number, cb?: (err?: Error) => void): void {
    // A pong asked for by a ping later in the same read as a failed write: nothing to write to.
    if (this.readyState === this.CLOSED) {
      cb?.(new Error("the channel's socket is closed"));
      return;
    }
    const header = frameHeader(opcode, length, this.mask);
    const bytes = header.length + length;
    this.queue.push({ chunks: [header, ...parts], bytes, cb });
    this.queuedBytes += bytes;
    if (this.queue.length === 1) this.flush();
  }

  // Writes queued frames until the socket is full; each callback fires once its whole frame is written.
  private flush(): void {
    while (this.queue.length > 0) {
      const head = this.queue[0];
      const n = this.native.writev(this.fd, head.chunks);
      if (n === -this.native.constants.EAGAIN || n === -this.native.constants.EINTR) return;
      if (n < 0) {
        this.fail(Object.assign(new Error(`writing the channel's socket failed: errno ${-n}`), { errno: -n }));
        return;
      }
      this.queuedBytes -= n;
      head.bytes -= n;
      if (head.bytes > 0) {
        head.chunks = dropBytes(head.chunks, n);
        continue;
      }
      this.queue.shift();
      head.cb?.();
    }
  }

  private fail(err: Error, closeCode?: number): void {
    if (this.readyState === this.CLOSED) return;
    this.emit('error', err);
    // As ws does: a frame this side refused closes with the code that names why, on both sides.
    if (closeCode !== undefined) this.closeCode = closeCode;
    if (closeCode !== undefined && !this.closeFrameSent) {
      this.closeFrameSent = true;
      this.sendControl(closeBody(closeCode, err.message.slice(0, 120)), OPCODE_CLOSE);
    }
    this.finish();
  }

  // The socket is done: unsent frames fail, the descriptor closes, 'close' fires once.
  private finish(): void {
    if (this.readyState === this.CLOSED) return;
    this.readyState = this.CLOSED;
    clearTimeout(this.closeTimer);
    const unsent = this.queue.splice(0);
    this.queuedBytes = 0;
    this.native.close(this.fd);
    for (const p of unsent) p.cb?.(new Error("the channel's socket closed before this frame was written"));
    this.emit('close', this.closeCode, this.closeReason);
  }
}

function dropBytes(chunks: Uint8Array[], n: number): Uint8Array[] {
  const rest: Uint8Array[] = [];
  for (const c of chunks) {
    if (n >= c.length) {
      n -= c.length;
      continue;
    }
    rest.push(n > 0 ? c.subarray(n) : c);
    n = 0;
  }
  return rest;
}
