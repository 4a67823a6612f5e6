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
// The receiving thread moves the socket with blocking syscalls, not libuv
// (blocking-websocket.ts); releasing it reads ws's private _socket, and
// test/protocol/channel-handoff.test.ts fails if that changes.
import type { Socket } from 'node:net';
import type { Logger } from '../log.ts';
import type { PollLoop } from '../poll-loop.ts';
import { loadNative } from '../uffd/native.ts';
import { BlockingWebSocket } from './blocking-websocket.ts';
import { MigrationChannel } from './channel.ts';
import { ProtocolStateError } from './errors.ts';
import type { RamLayout } from './layout.ts';
import { CHANNELS, type ChannelKind, type Role } from './messages.ts';
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
}

interface TcpHandle {
  readonly fd: number;
  readStop(): number;
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

/** What an adopted channel checks its messages against: a SharedMigrationState in a page thread. */
export interface StateSource {
  readonly state: MigrationState;
}

/**
 * The receiving thread: the same channel over the handed-over descriptor,
 * established, moved by that thread's poll loop until it closes.
 */
export function adoptChannel(handoff: ChannelHandoff, states: StateSource, log: Logger, loop: PollLoop): MigrationChannel {
  // A handoff that came through postMessage is a structured clone: its
  // strings are not the interned literals a rehearsal passes, and its layout
  // has an object shape of its own. Code V8 optimized in the page thread's
  // rehearsal checks both, and was thrown away at a migration's first frames.
  const role: Role = handoff.role === 'destination' ? 'destination' : 'source';
  const kind = CHANNELS.find((k) => k === handoff.kind)!;
  const layout: RamLayout = { pageSize: handoff.layout.pageSize, ramBase: handoff.layout.ramBase, ramSize: handoff.layout.ramSize };
  // Made here, once per channel of every caller: a state closure made by each caller was another call target for the same optimized code.
  const state = (): MigrationState => states.state;
  // The destination accepted the connection (server); the source opened it (client).
  const socket = new BlockingWebSocket({ fd: handoff.fd, isServer: role === 'destination', maxPayload: handoff.maxPayload });
  const channel = new MigrationChannel(socket, { kind, role, state, log });
  channel.established(layout);
  socket.on('close', () => loop.remove(socket));
  loop.add(socket);
  return channel;
}
