// Encoding of outgoing messages and the one validating decoder for incoming
// ones: size cap, then version, then whether the message may arrive here and
// now (rules.ts), then every field. What it returns can be trusted inside.
import { Packr, Unpackr } from 'msgpackr';
import { ProtocolError, ProtocolMalformedError, ProtocolTooLargeError, ProtocolVersionError } from './errors.ts';
import { FieldReader, type Fields } from './fields.ts';
import { pageCountOf, type RamLayout } from './layout.ts';
import { CHANNELS, type ControlMessage, type Message } from './messages.ts';
import type { EncodedPageSet } from './page-bitmap.ts';
import { decodePageFrame, decodePageRequest, encodePageRequest, isPageFrame, isPageRequestFrame } from './page-frame.ts';
import { checkAllowed, RULES, type ReceiveContext } from './rules.ts';
import { MIGRATION_STATES } from './state.ts';
import { MAX_CONTROL_BYTES, PROTOCOL_VERSION } from './version.ts';

// Records/structures are msgpackr extensions a peer could use to make us
// build objects from shapes it defines; plain maps only.
const packr = new Packr({ useRecords: false, moreTypes: false, encodeUndefinedAsNil: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, copyBuffers: false });

const CONTROL_TYPES = Object.keys(RULES).filter((k) => !k.endsWith('-frame')) as ControlMessage['type'][];
const SESSION_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;
const SHA256_PATTERN = /^[0-9a-f]{64}$/;
const MAX_VCPUS = 1024;
const MAX_PAGE_SIZE = 1 << 21;

export interface DecodeContext extends ReceiveContext {
  /** Known once the handshake fixed it; page ranges are checked against it. */
  readonly layout?: RamLayout;
}

/** A control message as msgpack, tagged with the protocol version; a page request as its binary frame (page-frame.ts). */
export function encodeControl(message: ControlMessage): Buffer {
  if (message.type === 'page-request') return encodePageRequest(message.pages);
  return packr.pack({ v: PROTOCOL_VERSION, ...message });
}

/** Decodes and validates one incoming ws message; throws only ProtocolError. */
export function decodeMessage(bytes: Uint8Array, ctx: DecodeContext): Message {
  try {
    return decodeUnchecked(bytes, ctx);
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolMalformedError(`undecodable ${ctx.channel} message: ${(err as Error).message}`, { cause: err });
  }
}

function decodeUnchecked(bytes: Uint8Array, ctx: DecodeContext): Message {
  if (isPageRequestFrame(bytes)) {
    checkAllowed('page-request', ctx);
    return decodePageRequest(bytes, pageCountOf(requireLayout(ctx, 'page-request')));
  }
  if (isPageFrame(bytes)) {
    // Peek at the flags byte to pick the rule; decodePageFrame validates it all.
    checkAllowed(bytes.length > 3 && (bytes[3] & 1) !== 0 ? 'precopy-frame' : 'postcopy-frame', ctx);
    const layout = requireLayout(ctx, 'page frame');
    return decodePageFrame(bytes, layout.pageSize, pageCountOf(layout));
  }
  if (bytes.length > MAX_CONTROL_BYTES) {
    throw new ProtocolTooLargeError(
      `${ctx.channel} message of ${bytes.length} bytes exceeds the ${MAX_CONTROL_BYTES}-byte limit for control messages; split it (discards can be sent in several messages)`,
    );
  }
  let decoded: unknown;
  try {
    decoded = unpackr.unpack(bytes);
  } catch (err) {
    throw new ProtocolMalformedError(`${ctx.channel} message is not valid msgpack (${(err as Error).message.slice(0, 80)}); the peer is not a postcopy ${ctx.receiver === 'source' ? 'destination' : 'source'}`, { cause: err });
  }
  if (typeof decoded !== 'object' || decoded === null || Array.isArray(decoded) || decoded instanceof Uint8Array) {
    throw new ProtocolMalformedError(`${ctx.channel} message must be a msgpack map with 'v' and 'type', got ${Array.isArray(decoded) ? 'an array' : typeof decoded}`);
  }
  const fields = decoded as Fields;
  if (fields.v !== PROTOCOL_VERSION) {
    throw new ProtocolVersionError(
      `peer speaks protocol version ${String(fields.v).slice(0, 20)}, this side speaks ${PROTOCOL_VERSION}; run the same postcopy version on both sides`,
    );
  }
  const type = fields.type;
  if (typeof type !== 'string' || !Object.hasOwn(RULES, type) || type === 'precopy-frame' || type === 'postcopy-frame') {
    throw new ProtocolMalformedError(`unknown message type ${JSON.stringify(type)?.slice(0, 40)} on the ${ctx.channel} channel`);
  }
  if (type === 'page-request') {
    throw new ProtocolMalformedError(`'page-request' travels as a binary page frame of kind 3, not as msgpack; the peer is not a postcopy destination of this version`);
  }
  checkAllowed(type as MsgpackType, ctx);
  return readControl(type as MsgpackType, new FieldReader(fields, type), ctx);
}

function requireLayout(ctx: DecodeContext, what: string): RamLayout {
  if (!ctx.layout) throw new ProtocolMalformedError(`${what} arrived before the RAM layout was agreed`);
  return ctx.layout;
}

function readRuns(f: FieldReader, name: string, layout: RamLayout): number[] {
  const pageCount = pageCountOf(layout);
  const runs = f.uintArray(name, MAX_CONTROL_BYTES / 2, pageCount);
  if (runs.length % 2 !== 0) throw new ProtocolMalformedError(`'${name}' must hold [start, length] pairs, got ${runs.length} numbers`);
  for (let i = 0; i < runs.length; i += 2) {
    if (runs[i + 1] < 1 || runs[i] + runs[i + 1] > pageCount) {
      throw new ProtocolMalformedError(`'${name}' run ${runs[i]}+${runs[i + 1]} is empty or reaches beyond the ${pageCount} pages of RAM`);
    }
  }
  return runs;
}

function readPageSet(f: FieldReader, layout: RamLayout): EncodedPageSet {
  const set = new FieldReader(f.map('received'), 'recover.received');
  const encoding = set.oneOf('encoding', ['runs', 'bits'] as const);
  if (encoding === 'runs') {
    set.only(['encoding', 'runs']);
    return { encoding, runs: readRuns(set, 'runs', layout) };
  }
  set.only(['encoding', 'bits']);
  return { encoding, bits: set.binary('bits', Math.ceil(pageCountOf(layout) / 8)) };
}

/** The control messages msgpack carries: all but page requests. */
type MsgpackType = Exclude<ControlMessage['type'], 'page-request'>;

function readControl(type: MsgpackType, f: FieldReader, ctx: DecodeContext): ControlMessage {
  switch (type) {
    case 'hello': {
      f.only(['channel', 'token', 'session', 'resume', 'pageSize', 'ramBase', 'ramSize', 'vcpus', 'imageSha256']);
      const pageSize = f.uint('pageSize', MAX_PAGE_SIZE, 512);
      const ramSize = f.uint('ramSize');
      if ((pageSize & (pageSize - 1)) !== 0 || ramSize % pageSize !== 0 || ramSize === 0) {
        throw new ProtocolMalformedError(`'hello' pageSize ${pageSize} must be a power of two and ramSize ${ramSize} a non-zero multiple of it`);
      }
      return {
        type,
        channel: f.oneOf('channel', CHANNELS),
        token: f.string('token', 256),
        session: f.string('session', 64, SESSION_PATTERN),
        resume: f.boolean('resume'),
        pageSize,
        ramBase: f.uint('ramBase'),
        ramSize,
        vcpus: f.uint('vcpus', MAX_VCPUS, 1),
        imageSha256: f.string('imageSha256', 64, SHA256_PATTERN),
      };
    }
    case 'welcome':
      f.only(['channel', 'session', 'state']);
      return { type, channel: f.oneOf('channel', CHANNELS), session: f.string('session', 64, SESSION_PATTERN), state: f.oneOf('state', MIGRATION_STATES) };
    case 'precopy-begin':
    case 'ready':
    case 'postcopy-run':
    case 'resume':
      f.only([]);
      return { type };
    case 'precopy-sync':
      f.only(['pages']);
      return { type, pages: f.uint('pages') };
    case 'discard':
      f.only(['runs']);
      return { type, runs: readRuns(f, 'runs', requireLayout(ctx, 'discard')) };
    case 'machine-config':
      f.only(['config']);
      return { type, config: f.present('config') };
    case 'machine-state':
      f.only(['state']);
      return { type, state: f.present('state') };
    case 'complete':
      f.only(['pages']);
      return { type, pages: f.uint('pages', pageCountOf(requireLayout(ctx, 'complete'))) };
    case 'recover':
      f.only(['received']);
      return { type, received: readPageSet(f, requireLayout(ctx, 'recover')) };
    case 'ack':
      f.only(['of']);
      return { type, of: f.oneOf('of', CONTROL_TYPES) };
    case 'cancel':
      f.only(['reason']);
      return { type, reason: f.string('reason', 1024) };
    case 'error':
      f.only(['code', 'message']);
      return { type, code: f.string('code', 64), message: f.string('message', 4096) };
  }
}

