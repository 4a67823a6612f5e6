// Which message may arrive from whom, on which channel, in which migration
// state — QEMU checks its PostcopyState "to ensure that the source is sending
// us messages in the correct order"; this table is that check.
import { ProtocolStateError } from './errors.ts';
import type { ChannelKind, MessageType, Role } from './messages.ts';
import type { MigrationState } from './state.ts';

interface Rule {
  readonly from: Role | 'either';
  readonly channels: readonly ChannelKind[];
  /** States of the receiver in which the message is accepted; 'any' for all. */
  readonly states: readonly MigrationState[] | 'any';
  /** Only as the first message of a channel (hello/welcome), never after. */
  readonly handshake?: true;
}

const ALL: readonly ChannelKind[] = ['control', 'bulk', 'urgent'];
const LIVE: readonly MigrationState[] = ['setup', 'precopy-active', 'device', 'postcopy-active', 'postcopy-paused'];

export const RULES: Record<MessageType, Rule> = {
  hello: { from: 'source', channels: ALL, states: ['setup', 'postcopy-paused'], handshake: true },
  welcome: { from: 'destination', channels: ALL, states: ['setup', 'postcopy-paused'], handshake: true },
  'precopy-begin': { from: 'source', channels: ['control'], states: ['setup'] },
  discard: { from: 'source', channels: ['control'], states: ['precopy-active', 'device'] },
  'machine-state': { from: 'source', channels: ['control'], states: ['setup', 'precopy-active'] },
  'postcopy-run': { from: 'source', channels: ['control'], states: ['device'] },
  complete: { from: 'destination', channels: ['control'], states: ['postcopy-active'] },
  recover: { from: 'destination', channels: ['control'], states: ['postcopy-paused'] },
  resume: { from: 'source', channels: ['control'], states: ['postcopy-paused'] },
  ack: { from: 'either', channels: ['control'], states: LIVE },
  cancel: { from: 'either', channels: ['control'], states: ['setup', 'precopy-active', 'device'] },
  error: { from: 'either', channels: ALL, states: 'any' },
  'page-request': { from: 'destination', channels: ['urgent'], states: ['postcopy-active'] },
  // Precopy pages may still flow while the source is stopped (the last dirty
  // pages of a precopy switchover); requested pages only once postcopy runs.
  pages: { from: 'source', channels: ['bulk', 'urgent'], states: ['precopy-active', 'device', 'postcopy-active'] },
  'zero-run': { from: 'source', channels: ['bulk', 'urgent'], states: ['precopy-active', 'device', 'postcopy-active'] },
};

export interface ReceiveContext {
  /** Who is receiving: the sender is the other role. */
  readonly receiver: Role;
  readonly channel: ChannelKind;
  readonly state: MigrationState;
  /** True until this channel's handshake is done. */
  readonly handshaking: boolean;
}

/** Throws ProtocolStateError unless `type` may arrive in `ctx`. */
export function checkAllowed(type: MessageType, ctx: ReceiveContext): void {
  const rule = RULES[type];
  const sender: Role = ctx.receiver === 'source' ? 'destination' : 'source';
  if (rule.from !== 'either' && rule.from !== sender) {
    throw new ProtocolStateError(`a ${ctx.receiver} never receives '${type}'; only a ${rule.from} sends it — check which side connected to which`);
  }
  if (!rule.channels.includes(ctx.channel)) {
    throw new ProtocolStateError(`'${type}' is not allowed on the ${ctx.channel} channel; it belongs on ${rule.channels.join(' or ')}`);
  }
  if (type !== 'error' && ctx.handshaking !== (rule.handshake === true)) {
    throw new ProtocolStateError(
      ctx.handshaking
        ? `the ${ctx.channel} channel must start with ${ctx.receiver === 'destination' ? 'hello' : 'welcome'}, not '${type}'`
        : `'${type}' arrived on the ${ctx.channel} channel after its handshake was done; send it only once, first`,
    );
  }
  if (rule.states !== 'any' && !rule.states.includes(ctx.state)) {
    throw new ProtocolStateError(
      `'${type}' is not allowed while the migration is ${ctx.state}; it is accepted only in ${rule.states.join(', ')}`,
    );
  }
}
