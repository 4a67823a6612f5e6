// Moves an established channel's socket to another thread, the way QEMU
// gives postcopy's page requests their own thread: the handshake (token,
// identity, session) stays on the main thread, then the urgent channel's
// file descriptor is duplicated, handed to a fault thread, and the main
// thread's copy closed. Closing one of two descriptors of a socket sends
// nothing, so the peer sees one unbroken WebSocket.
//
// Only a quiet channel can move: nothing unread on this side and nothing
// unsent. The urgent channel is quiet between its welcome and the first page
// request, which is when both sides hand it over.
//
// ws has no public way to wrap an already-upgraded socket; setSocket() is
// what its own server and client call after the HTTP upgrade, and
// test/protocol/channel-handoff.test.ts fails if that changes.
import type { Socket } from 'node:net';
import { Socket as NetSocket } from 'node:net';
import WebSocket from 'ws';
import type { Logger } from '../log.ts';
import { loadNative } from '../uffd/native.ts';
import { MigrationChannel } from './channel.ts';
import { ProtocolStateError } from './errors.ts';
import type { RamLayout } from './layout.ts';
import type { ChannelKind, Role } from './messages.ts';
import type { MigrationState } from './state.ts';

/** Structured-cloneable: what the receiving thread needs to go on with the channel. */
export interface ChannelHandoff {
  readonly fd: number;
  readonly kind: ChannelKind;
  readonly role: Role;
  readonly layout: RamLayout;
  readonly maxPayload: number;
}

interface WebSocketInternals {
  _socket: Socket;
  _isServer: boolean;
  setSocket(socket: Socket, head: Buffer, options: { maxPayload: number; skipUTF8Validation: boolean; allowSynchronousEvents: boolean; generateMask?: (mask: Buffer) => void }): void;
}

interface TcpHandle {
  readonly fd: number;
  readStop(): number;
}

function zeroMask(mask: Buffer): void {
  mask.fill(0);
}

/** Main thread: stop using `channel` and return its socket, duplicated, for another thread. */
export async function releaseChannel(channel: MigrationChannel, role: Role, maxPayload: number): Promise<ChannelHandoff> {
  const socket = (channel.ws as unknown as WebSocketInternals)._socket;
  const handle = (socket as unknown as { _handle: TcpHandle | null })._handle;
  if (!channel.open || !handle || !channel.layout) {
    throw new ProtocolStateError(`the ${channel.kind} channel cannot move to another thread: it is not open and established`);
  }
  handle.readStop();
  if (socket.readableLength > 0) {
    throw new ProtocolStateError(`the ${channel.kind} channel cannot move to another thread: ${socket.readableLength} bytes arrived before the handover`);
  }
  // What was sent (the welcome, a hello) must reach the kernel before this thread lets go.
  while (socket.writableLength > 0 || channel.bufferedAmount > 0) {
    await new Promise((resolve) => socket.once('drain', resolve));
  }
  const fd = loadNative().dup(handle.fd);
  channel.release();
  socket.destroy();
  return { fd, kind: channel.kind, role, layout: channel.layout, maxPayload };
}

/** The receiving thread: the same channel over the handed-over descriptor, established. */
export function adoptChannel(handoff: ChannelHandoff, state: () => MigrationState, log: Logger): MigrationChannel {
  const socket = new NetSocket({ fd: handoff.fd, readable: true, writable: true });
  // ws's own default: a close handshake may take 30 s before the socket is destroyed.
  const ws = new WebSocket(null as unknown as string, undefined, { closeTimeout: 30_000 } as WebSocket.ClientOptions);
  const internals = ws as unknown as WebSocketInternals;
  // The destination accepted the connection (server); the source opened it (client, masked with zeros as in connect.ts).
  internals._isServer = handoff.role === 'destination';
  internals.setSocket(socket, Buffer.alloc(0), {
    maxPayload: handoff.maxPayload,
    skipUTF8Validation: true,
    allowSynchronousEvents: true,
    ...(handoff.role === 'source' ? { generateMask: zeroMask } : {}),
  });
  const channel = new MigrationChannel(ws, { kind: handoff.kind, role: handoff.role, state, log });
  channel.established(handoff.layout);
  return channel;
}
