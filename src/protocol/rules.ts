// Which message may arrive from whom, on which channel, in which migration
// state — QEMU checks its PostcopyState "to ensure that the source is sending
// us messages in the correct order"; this table is that check.
import { ProtocolStateError } from './errors.ts';
import type { ChannelKind, MessageType, Role } from './messages.ts';
import type { MigrationState } from './state.ts';

/** Page frames are checked by their flag: precopy frames may arrive before precopy-begin is read. */
export type RuleKey = Exclude<MessageType, 'pages' | 'zero-run'> | 'precopy-frame' | 'postcopy-frame';

type States = readonly MigrationState[] | 'any';

interface Rule {
  readonly from: Role | 'either';
  /** The channels it may arrive on, each with the receiver states in which it is accepted. */
  readonly on: Partial<Record<ChannelKind, States>>;
  /** Only as the first message of a channel (hello/welcome), never after. */
  readonly handshake?: true;
}

const LIVE: readonly MigrationState[] = ['setup', 'precopy-active', 'device', 'postcopy-active', 'postcopy-paused'];
const HANDSHAKE: readonly MigrationState[] = ['setup', 'postcopy-paused'];
const everywhere = (states: States): Rule['on'] => ({ control: states, bulk: states, urgent: states });

export const RULES: Record<RuleKey, Rule> = {
  hello: { from: 'source', on: everywhere(HANDSHAKE), handshake: true },
  welcome: { from: 'destination', on: everywhere(HANDSHAKE), handshake: true },
  'precopy-begin': { from: 'source', on: { control: ['setup'] } },
  ready: { from: 'destination', on: { control: ['setup', 'precopy-active'] } },
  'precopy-sync': { from: 'source', on: { control: ['precopy-active'] } },
  discard: { from: 'source', on: { control: ['precopy-active', 'device'] } },
  'machine-config': { from: 'source', on: { control: ['setup'] } },
  'machine-state': { from: 'source', on: { control: ['setup', 'precopy-active'] } },
  'postcopy-run': { from: 'source', on: { control: ['device'] } },
  complete: { from: 'destination', on: { control: ['postcopy-active'] } },
  recover: { from: 'destination', on: { control: ['postcopy-paused'] } },
  resume: { from: 'source', on: { control: ['postcopy-paused'] } },
  ack: { from: 'either', on: { control: LIVE } },
  cancel: { from: 'either', on: { control: ['setup', 'precopy-active', 'device'] } },
  error: { from: 'either', on: everywhere('any') },
  // Requests sent just before `complete` may still arrive after it: ignored, not refused.
  'page-request': { from: 'destination', on: { urgent: ['postcopy-active', 'completed'] } },
  // Precopy pages ride bulk, placed by the destination's bulk thread, and
  // precopy-sync orders them before any discard or machine state. They go
  // right behind precopy-begin on another socket, so they may be read before
  // it, and they still flow while the source is stopped (the last dirty pages
  // of a precopy switchover).
  'precopy-frame': { from: 'source', on: { bulk: ['setup', 'precopy-active', 'device'] } },
  // The background push may start before postcopy-run is read, and frames in
  // flight when the destination completes are dropped, not refused. Frames
  // the source sent before a connection broke may still be read after this
  // side paused: the source's RAM is frozen in postcopy, so they are placed.
  'postcopy-frame': {
    from: 'source',
    on: { bulk: ['device', 'postcopy-active', 'postcopy-paused', 'completed'], urgent: ['postcopy-active', 'postcopy-paused', 'completed'] },
  },
};

export interface ReceiveContext {
  /** Who is receiving: the sender is the other role. */
  readonly receiver: Role;
  readonly channel: ChannelKind;
  readonly state: MigrationState;
  /** True until this channel's handshake is done. */
  readonly handshaking: boolean;
}

/** Throws ProtocolStateError unless a message of `key` may arrive in `ctx`. */
export function checkAllowed(key: RuleKey, ctx: ReceiveContext): void {
  const rule = RULES[key];
  const sender: Role = ctx.receiver === 'source' ? 'destination' : 'source';
  if (rule.from !== 'either' && rule.from !== sender) {
    throw new ProtocolStateError(`a ${ctx.receiver} never receives '${key}'; only a ${rule.from} sends it — check which side connected to which`);
  }
  const states = rule.on[ctx.channel];
  if (states === undefined) {
    throw new ProtocolStateError(`'${key}' is not allowed on the ${ctx.channel} channel; it belongs on ${Object.keys(rule.on).join(' or ')}`);
  }
  if (key !== 'error' && ctx.handshaking !== (rule.handshake === true)) {
    throw new ProtocolStateError(
      ctx.handshaking
        ? `the ${ctx.channel} channel must start with ${ctx.receiver === 'destination' ? 'hello' : 'welcome'}, not '${key}'`
        : `'${key}' arrived on the ${ctx.channel} channel after its handshake was done; send it only once, first`,
    );
  }
  if (states !== 'any' && !states.includes(ctx.state)) {
    throw new ProtocolStateError(
      `'${key}' is not allowed on the ${ctx.channel} channel while the migration is ${ctx.state}; it is accepted there only in ${states.join(', ')}`,
    );
  }
}
