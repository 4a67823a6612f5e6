// A page channel's WebSocket on a page thread (urgent on both sides, bulk
// on the destination's bulk thread and the source's push thread): the same
// RFC 6455 frames, moved by read(2) and writev(2) when the thread's PollLoop
// says the socket is ready, not by a net.Socket on libuv. A page request or
// a page then goes out in the wake-up that produced it, and an arriving one
// is handled in the wake-up that read it.
//
// It has the part of ws's WebSocket that MigrationChannel uses, with the
// same meaning: send callbacks fire once a frame reached the kernel, a close
// handshake answers the peer's close frame, and 'close' comes last, once.
// It parses frames itself, with ws's checks and close codes: ws's Receiver,
// which it used to feed, is a state machine over chunks of a stream that
// cost a microsecond per frame on each side of a fault, and here every
// frame is whole in memory when it is parsed.
import { EventEmitter } from 'node:events';
import { PostcopyError } from '../errors.ts';
import { emptyObjectArray } from '../object-array.ts';
import type { PollSource } from '../poll-loop.ts';
import { loadNative } from '../uffd/native.ts';
import type { ChannelSocket } from './channel.ts';

const OPCODE_CONTINUATION = 0x0;
const OPCODE_TEXT = 0x1;
const OPCODE_BINARY = 0x2;
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const OPCODE_PONG = 0xa;
const CLOSE_PROTOCOL_ERROR = 1002;
const CLOSE_TOO_BIG = 1009;
// ws's own default: a close handshake may take 30 s before the socket is dropped.
const CLOSE_TIMEOUT_MS = 30_000;
// Reads land in a slab and messages are views of it. A full slab is reused
// for later reads; a fresh 512 KiB buffer per slab made the bulk thread's
// garbage collector run every few tens of milliseconds, on helper threads the
// push needs. So a message's bytes are valid only while its 'message'
// listeners run, which is how the page threads use them: placed, then dropped.
// (The parts of a fragmented message, which no postcopy peer sends, are copied.)
//
// A frame is parsed once it is whole, in one piece of one slab: its pages go
// to UFFDIO_COPY as they lie. A frame's head that reached the end of a slab
// would have to move to the start of the next one, so reads leave room at a
// slab's end for the largest frame seen, and end there. Read up to the end,
// a slab took the head of the next frame nearly every time: bulk frames of
// up to 256 KiB into 512 KiB slabs, and 100 MB of the 540 MB a 1 GiB
// postcopy receives were copied again.
const SLAB_BYTES = 512 * 1024;
// A slab holds this many of the largest frames seen, room kept at the end included.
const FRAMES_PER_SLAB = 4;
const MIN_READ_BYTES = 64 * 1024;
const MAX_SPARE_SLABS = 4;
// The largest header: 2 bytes, a 64-bit length, a mask.
const MAX_HEADER_BYTES = 14;
// Control frames carry at most this much (RFC 6455 5.5).
const MAX_CONTROL_PAYLOAD = 125;

/**
 * A frame RFC 6455 (or our size limit) refuses, with the close code that
 * says why, and a stable code as ws's own errors had (the log shows it).
 */
class FrameError extends PostcopyError {
  constructor(
    message: string,
    readonly closeCode: typeof CLOSE_PROTOCOL_ERROR | typeof CLOSE_TOO_BIG,
  ) {
    super(closeCode === CLOSE_TOO_BIG ? 'WS_ERR_MESSAGE_TOO_BIG' : 'WS_ERR_INVALID_FRAME', `invalid WebSocket frame: ${message}`);
  }
}

/** Whether a close frame may carry `code` (RFC 6455 7.4; ws's isValidStatusCode). */
function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/**
 * Writes an RFC 6455 frame header for a payload of `length` bytes, which
 * follows it unchanged, at the start of `into`; returns its length. Client
 * frames are masked with zeros, as in connect.ts: masking is for browsers'
 * sake, and a zero mask leaves the payload as it is, so a frame's payload may
 * be written straight from guest RAM, in parts, with no copy (ws's
 * Sender.frame takes one contiguous payload).
 */
function writeFrameHeader(into: Buffer, opcode: number, length: number, mask: boolean): number {
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
  into[0] = 0x80 | opcode;
  into[1] = (mask ? 0x80 : 0) | (lengthBytes === 0 ? length : lengthBytes === 2 ? 126 : 127);
  if (lengthBytes === 2) into.writeUInt16BE(length, 2);
  else if (lengthBytes === 8) {
    // Two 32-bit halves, with the writer the mask uses: writeUIntBE(length,
    // 4, 6) was a function of its own that V8 compiled for the page push
    // inside the postcopy window of most migrations (--trace-opt).
    into.writeUInt32BE(Math.floor(length / 0x1_0000_0000), 2);
    into.writeUInt32BE(length >>> 0, 6);
  }
  const bytes = 2 + lengthBytes;
  if (mask) into.writeUInt32BE(0, bytes);
  return bytes + (mask ? 4 : 0);
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
  private readonly mask: boolean;
  private readonly maxPayload: number;
  private readonly queue = emptyObjectArray<Pending>();
  private queuedBytes = 0;
  private reading = true;
  private slab: Buffer = Buffer.allocUnsafeSlow(SLAB_BYTES);
  private slabUsed = 0;
  /** Where in the slab the first frame not yet parsed starts. */
  private slabFed = 0;
  private readonly maxFrameBytes: number;
  private readonly spare: Buffer[] = [];
  /** The largest frame read so far, header included: the room reads leave at a slab's end. */
  private largestFrame = MAX_HEADER_BYTES;
  /** The parts of a fragmented message so far, copied; undefined when none is under way. */
  private fragments: { parts: Buffer[]; bytes: number; binary: boolean } | undefined;
  // The header parsed last by parseHeader(), kept in fields: nothing is allocated per frame.
  private headerOpcode = 0;
  private headerFin = false;
  private headerMasked = false;
  private headerBytes = 0;
  private payloadBytes = 0;
  private closeFrameSent = false;
  private closeFrameReceived = false;
  private closeCode = 1006;
  private closeReason = Buffer.alloc(0);
  private closeTimer: NodeJS.Timeout | undefined;
  // A frame's header is written here and, when the whole frame is written at
  // once (the usual case), never leaves: a buffer per header was a malloc per
  // frame on each side of a fault. headers[n] is its first n bytes.
  private readonly header = Buffer.allocUnsafeSlow(MAX_HEADER_BYTES);
  private readonly headers = Array.from({ length: MAX_HEADER_BYTES + 1 }, (_, n) => this.header.subarray(0, n));

  constructor(options: BlockingWebSocketOptions) {
    super();
    this.fd = options.fd;
    this.mask = !options.isServer;
    this.maxPayload = options.maxPayload;
    this.maxFrameBytes = options.maxPayload + MAX_HEADER_BYTES;
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
    const known = this.parseHeader(this.slabFed);
    // What the frame under way still needs; for one whose header is not all here, its longest header.
    const needed = (known ? Math.min(this.headerBytes + this.payloadBytes, this.maxFrameBytes) : MAX_HEADER_BYTES) - head;
    const room = this.largestFrame;
    let free = this.slab.length - this.slabUsed;
    // A frame longer than any before may not fit: its head is copied. Between
    // frames, with little room left, a fresh slab costs a header's bytes at most.
    if (free < needed || (!known && free - room < MIN_READ_BYTES)) {
      this.nextSlab(head + Math.max(needed, MIN_READ_BYTES) + room);
      free = this.slab.length - this.slabUsed;
    }
    const limit = Math.max(needed, free - room);
    const n = this.native.readBytes(this.fd, this.slab, this.slabUsed, limit);
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
    this.parseFrames();
  }

  /**
   * Every whole frame read so far, in order. A header is checked as soon as
   * it is all there, so a refusal comes without waiting for a payload that
   * may never come. Nothing after a close frame is read (RFC 6455 5.5.1).
   */
  private parseFrames(): void {
    while (this.readyState !== this.CLOSED && !this.closeFrameReceived && this.parseHeader(this.slabFed)) {
      const refusal = this.refusal();
      if (refusal !== undefined) {
        this.fail(refusal, refusal.closeCode);
        return;
      }
      const start = this.slabFed + this.headerBytes;
      const end = start + this.payloadBytes;
      if (end > this.slabUsed) return;
      if (end - this.slabFed > this.largestFrame) this.largestFrame = end - this.slabFed;
      this.slabFed = end;
      const payload = this.slab.subarray(start, end);
      if (this.headerMasked) unmask(payload, this.slab, start - 4);
      this.deliver(this.headerOpcode, this.headerFin, payload);
    }
  }

  /** Reads the header of the frame at `offset` of the slab into the header fields; false until it is all there. */
  private parseHeader(offset: number): boolean {
    const slab = this.slab;
    const have = this.slabUsed - offset;
    if (have < 2) return false;
    const second = slab[offset + 1];
    let length = second & 0x7f;
    let header = 2;
    if (length === 126) {
      if (have < 4) return false;
      length = (slab[offset + 2] << 8) | slab[offset + 3];
      header = 4;
    } else if (length === 127) {
      if (have < 10) return false;
      length = slab.readUInt32BE(offset + 2) * 2 ** 32 + slab.readUInt32BE(offset + 6);
      header = 10;
    }
    const masked = (second & 0x80) !== 0;
    if (masked) header += 4;
    if (have < header) return false;
    this.headerOpcode = slab[offset] & 0x0f;
    this.headerFin = (slab[offset] & 0x80) !== 0;
    this.headerMasked = masked;
    this.headerBytes = header;
    this.payloadBytes = length;
    return true;
  }

  /** What is wrong with the frame whose header was parsed last, as ws's Receiver would refuse it; undefined if nothing. */
  private refusal(): FrameError | undefined {
    const opcode = this.headerOpcode;
    const length = this.payloadBytes;
    if ((this.slab[this.slabFed] & 0x70) !== 0) return new FrameError('RSV bits must be clear (no extension was agreed)', CLOSE_PROTOCOL_ERROR);
    if (this.headerMasked === this.mask) {
      return new FrameError(this.mask ? 'MASK must be clear in frames from a server' : 'MASK must be set in frames from a client', CLOSE_PROTOCOL_ERROR);
    }
    if (opcode === OPCODE_CLOSE || opcode === OPCODE_PING || opcode === OPCODE_PONG) {
      if (!this.headerFin) return new FrameError('FIN must be set on a control frame', CLOSE_PROTOCOL_ERROR);
      if (length > MAX_CONTROL_PAYLOAD) return new FrameError(`control frame payload of ${length} bytes; at most ${MAX_CONTROL_PAYLOAD}`, CLOSE_PROTOCOL_ERROR);
      if (opcode === OPCODE_CLOSE && length === 1) return new FrameError('close frame payload of 1 byte; a close code takes 2', CLOSE_PROTOCOL_ERROR);
      return undefined;
    }
    if (opcode === OPCODE_CONTINUATION) {
      if (this.fragments === undefined) return new FrameError('continuation frame with no message to continue', CLOSE_PROTOCOL_ERROR);
    } else if (opcode === OPCODE_TEXT || opcode === OPCODE_BINARY) {
      if (this.fragments !== undefined) return new FrameError(`opcode ${opcode} before the fragmented message under way was finished`, CLOSE_PROTOCOL_ERROR);
    } else {
      return new FrameError(`unknown opcode ${opcode}`, CLOSE_PROTOCOL_ERROR);
    }
    const message = length + (this.fragments?.bytes ?? 0);
    if (message > this.maxPayload) return new FrameError(`message of ${message} bytes exceeds the ${this.maxPayload}-byte limit`, CLOSE_TOO_BIG);
    return undefined;
  }

  private deliver(opcode: number, fin: boolean, payload: Buffer): void {
    switch (opcode) {
      case OPCODE_BINARY:
      case OPCODE_TEXT:
        if (fin) this.emit('message', payload, opcode === OPCODE_BINARY);
        else this.fragments = { parts: [Buffer.from(payload)], bytes: payload.length, binary: opcode === OPCODE_BINARY };
        return;
      case OPCODE_CONTINUATION: {
        const fragments = this.fragments!;
        fragments.parts.push(Buffer.from(payload));
        fragments.bytes += payload.length;
        if (!fin) return;
        this.fragments = undefined;
        this.emit('message', Buffer.concat(fragments.parts, fragments.bytes), fragments.binary);
        return;
      }
      case OPCODE_PING:
        // Copied: a pong may wait in the send queue after its slab is reused.
        this.sendControl(Buffer.from(payload), OPCODE_PONG);
        return;
      case OPCODE_CLOSE: {
        const code = payload.length === 0 ? 1005 : payload.readUInt16BE(0);
        if (payload.length > 0 && !isValidCloseCode(code)) {
          this.fail(new FrameError(`close code ${code} is not one a peer may send`, CLOSE_PROTOCOL_ERROR), CLOSE_PROTOCOL_ERROR);
          return;
        }
        this.onCloseFrame(code, payload.subarray(2));
        return;
      }
    }
  }

  // Moves the unparsed head to the start of a slab with room for `bytes`; the
  // old slab is free again at once, as nothing holds a view of it past a
  // message's listeners.
  private nextSlab(bytes: number): void {
    const head = this.slab.subarray(this.slabFed, this.slabUsed);
    const size = Math.max(SLAB_BYTES, FRAMES_PER_SLAB * this.largestFrame, bytes);
    const fits = this.spare.findIndex((slab) => slab.length >= size);
    const next = fits >= 0 ? this.spare.splice(fits, 1)[0] : Buffer.allocUnsafeSlow(size);
    head.copy(next);
    // Slabs in use at once are a few: more spares only hold memory, and the smallest is the first to go.
    this.spare.push(this.slab);
    if (this.spare.length > MAX_SPARE_SLABS) this.spare.sort((a, b) => b.length - a.length).pop();
    this.slab = next;
    this.slabFed = 0;
    this.slabUsed = head.length;
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
    const header = this.headers[writeFrameHeader(this.header, opcode, length, this.mask)];
    const bytes = header.length + length;
    let written = 0;
    let failed = 0;
    if (this.queue.length === 0) {
      // One and two parts (a request, a page frame) spelled out: a spread call was 30-90 ns slower per frame.
      const n = parts.length === 1 ? this.native.writev(this.fd, header, parts[0]) : parts.length === 2 ? this.native.writev(this.fd, header, parts[0], parts[1]) : this.native.writev(this.fd, header, ...parts);
      if (n === bytes) {
        cb?.();
        return;
      }
      if (n > 0) written = n;
      else if (n !== -this.native.constants.EAGAIN && n !== -this.native.constants.EINTR) failed = n;
    }
    // The rest waits for POLLOUT, its header out of the buffer the next frame reuses.
    const chunks = [Buffer.from(header), ...parts];
    this.queue.push({ chunks: written > 0 ? dropBytes(chunks, written) : chunks, bytes: bytes - written, cb });
    this.queuedBytes += bytes - written;
    // Failing finishes the socket, which fails the frame's callback with the rest of the queue.
    if (failed < 0) this.writeFailed(failed);
  }

  // Writes queued frames until the socket is full; each callback fires once its whole frame is written.
  private flush(): void {
    while (this.queue.length > 0) {
      const head = this.queue[0];
      const n = this.native.writev(this.fd, ...head.chunks);
      if (n === -this.native.constants.EAGAIN || n === -this.native.constants.EINTR) return;
      if (n < 0) {
        this.writeFailed(n);
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

  private writeFailed(n: number): void {
    this.fail(Object.assign(new Error(`writing the channel's socket failed: errno ${-n}`), { errno: -n }));
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

/** Unmasks `payload` in place with the 4-byte key at `keyAt` of `slab`; a zero key, as ours, leaves it as it is. */
function unmask(payload: Buffer, slab: Buffer, keyAt: number): void {
  const key = slab.readUInt32BE(keyAt);
  if (key === 0) return;
  for (let i = 0; i < payload.length; i++) payload[i] ^= slab[keyAt + (i & 3)];
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
