import fc from 'fast-check';
import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeControl, type DecodeContext } from '../../src/protocol/codec.ts';
import { ProtocolError } from '../../src/protocol/errors.ts';
import type { ControlMessage } from '../../src/protocol/messages.ts';
import { encodePageRequest, encodePages, encodeZeroRun, PAGE_FRAME_HEADER_BYTES } from '../../src/protocol/page-frame.ts';
import { pageIndex } from '../../src/protocol/layout.ts';
import { MAX_CONTROL_BYTES, PROTOCOL_VERSION } from '../../src/protocol/version.ts';

const layout = { pageSize: 4096, ramBase: 0x8000_0000, ramSize: 64 * 4096 };
const PAGES = 64;

function ctx(over: Partial<DecodeContext> = {}): DecodeContext {
  return { receiver: 'destination', channel: 'control', state: 'precopy-active', handshaking: false, layout, ...over };
}

function errorOf(f: () => unknown): ProtocolError {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return err as ProtocolError;
  }
  throw new Error('expected a protocol error');
}

const raw = (o: object): Buffer => pack({ v: PROTOCOL_VERSION, ...o });

describe('control message decoding', () => {
  it('refuses bytes that are not msgpack, naming the channel', () => {
    const err = errorOf(() => decodeMessage(Buffer.from([0xc4, 0xff]), ctx()));
    expect(err.code).toBe('PROTO_ERR_MALFORMED');
    expect(err.message).toMatch(/control message is not valid msgpack/);
  });

  it('refuses a msgpack value that is not a map', () => {
    const err = errorOf(() => decodeMessage(pack([1, 2, 3]), ctx()));
    expect(err.code).toBe('PROTO_ERR_MALFORMED');
    expect(err.message).toMatch(/must be a msgpack map/);
  });

  it('refuses another protocol version, naming both', () => {
    const err = errorOf(() => decodeMessage(pack({ v: 99, type: 'discard', runs: [] }), ctx()));
    expect(err.code).toBe('PROTO_ERR_VERSION');
    expect(err.message).toMatch(new RegExp(`version 99.*speaks ${PROTOCOL_VERSION}`));
  });

  it('refuses an unknown message type', () => {
    const err = errorOf(() => decodeMessage(raw({ type: 'teleport' }), ctx()));
    expect(err.code).toBe('PROTO_ERR_MALFORMED');
    expect(err.message).toMatch(/unknown message type "teleport"/);
  });

  it('refuses a precopy-sync whose page count is not a whole number of pages', () => {
    for (const pages of [-1, 1.5, '12']) {
      const err = errorOf(() => decodeMessage(raw({ type: 'precopy-sync', pages }), ctx()));
      expect(err.code).toBe('PROTO_ERR_MALFORMED');
      expect(err.message).toMatch(/'precopy-sync' field 'pages'/);
    }
  });

  it('refuses a field of the wrong type, naming message and field', () => {
    const err = errorOf(() => decodeMessage(raw({ type: 'discard', runs: 'all' }), ctx()));
    expect(err.code).toBe('PROTO_ERR_MALFORMED');
    expect(err.message).toMatch(/'discard' field 'runs' must be an array/);
  });

  it('refuses unknown fields', () => {
    const err = errorOf(() => decodeMessage(raw({ type: 'postcopy-run', now: true }), ctx({ state: 'device' })));
    expect(err.message).toMatch(/unknown field 'now'/);
  });

  it('refuses page indexes outside RAM in a page request', () => {
    const err = errorOf(() => decodeMessage(encodePageRequest([pageIndex(1), pageIndex(PAGES)]), ctx({ receiver: 'source', channel: 'urgent', state: 'postcopy-active' })));
    expect(err.code).toBe('PROTO_ERR_MALFORMED');
    expect(err.message).toMatch(/names page 64 \(index 1\), beyond the 64 pages/);
  });

  it('refuses a page request in msgpack: requests are binary frames since protocol version 4', () => {
    const err = errorOf(() => decodeMessage(raw({ type: 'page-request', pages: [1] }), ctx({ receiver: 'source', channel: 'urgent', state: 'postcopy-active' })));
    expect(err.code).toBe('PROTO_ERR_MALFORMED');
    expect(err.message).toMatch(/'page-request' travels as a binary page frame of kind 3/);
  });

  it.each([
    ['no page', () => encodePageRequest([]), /count 0 is out of range; it must be 1\.\.4096/],
    ['more pages than a request may name', () => encodePageRequest(Array.from({ length: 4097 }, () => pageIndex(0))), /count 4097 is out of range/],
    ['a length that does not match its count', () => encodePageRequest([pageIndex(1), pageIndex(2)]).subarray(0, 20), /for 2 pages is 20 bytes; expected 16 \+ 4 \* count = 24/],
    ['a start field set', () => Object.assign(encodePageRequest([pageIndex(1)]), { 4: 1 }), /flags, start or reserved bits set/],
    ['flags set', () => Object.assign(encodePageRequest([pageIndex(1)]), { 3: 1 }), /flags, start or reserved bits set/],
  ])('refuses a page request with %s', (_what, frame, message) => {
    const err = errorOf(() => decodeMessage(frame(), ctx({ receiver: 'source', channel: 'urgent', state: 'postcopy-active' })));
    expect(err.code).toBe('PROTO_ERR_MALFORMED');
    expect(err.message).toMatch(message);
  });

  it('refuses a page request where the rules do: at a destination, or on bulk', () => {
    const request = encodePageRequest([pageIndex(1)]);
    expect(errorOf(() => decodeMessage(request, ctx({ receiver: 'destination', channel: 'urgent', state: 'postcopy-active' }))).code).toBe('PROTO_ERR_STATE');
    expect(errorOf(() => decodeMessage(request, ctx({ receiver: 'source', channel: 'bulk', state: 'postcopy-active' }))).code).toBe('PROTO_ERR_STATE');
  });

  it('refuses discard runs reaching beyond RAM', () => {
    const err = errorOf(() => decodeMessage(raw({ type: 'discard', runs: [60, 5] }), ctx()));
    expect(err.message).toMatch(/run 60\+5 .* beyond the 64 pages/);
  });

  it('refuses a message not allowed in the current state, naming state and where it is allowed', () => {
    const err = errorOf(() => decodeMessage(raw({ type: 'postcopy-run' }), ctx({ state: 'precopy-active' })));
    expect(err.code).toBe('PROTO_ERR_STATE');
    expect(err.message).toMatch(/'postcopy-run' is not allowed .* while the migration is precopy-active; .* only in device/);
  });

  it('refuses a message on the wrong channel', () => {
    const err = errorOf(() => decodeMessage(raw({ type: 'discard', runs: [] }), ctx({ channel: 'bulk' })));
    expect(err.code).toBe('PROTO_ERR_STATE');
    expect(err.message).toMatch(/not allowed on the bulk channel; it belongs on control/);
  });

  it('refuses a message sent by the wrong side', () => {
    const err = errorOf(() => decodeMessage(raw({ type: 'complete', pages: 1 }), ctx({ state: 'postcopy-active' })));
    expect(err.code).toBe('PROTO_ERR_STATE');
    expect(err.message).toMatch(/a destination never receives 'complete'/);
  });

  it('refuses cancel once the guest runs on the destination', () => {
    const err = errorOf(() => decodeMessage(raw({ type: 'cancel', reason: 'x' }), ctx({ state: 'postcopy-active' })));
    expect(err.code).toBe('PROTO_ERR_STATE');
  });

  it('refuses anything but hello before the handshake', () => {
    const err = errorOf(() => decodeMessage(raw({ type: 'precopy-begin' }), ctx({ state: 'setup', handshaking: true })));
    expect(err.message).toMatch(/must start with hello/);
  });

  it('refuses an oversized control message before decoding it', () => {
    const big = Buffer.alloc(MAX_CONTROL_BYTES + 1, 0x90);
    const err = errorOf(() => decodeMessage(big, ctx()));
    expect(err.code).toBe('PROTO_ERR_TOO_LARGE');
    expect(err.message).toMatch(/exceeds the \d+-byte limit/);
  });

  it('returns binary fields as views of the received bytes, not copies', () => {
    const bits = new Uint8Array(PAGES / 8).fill(0xff);
    const bytes = encodeControl({ type: 'recover', received: { encoding: 'bits', bits } });
    const m = decodeMessage(bytes, ctx({ receiver: 'source', state: 'postcopy-paused' }));
    if (m.type !== 'recover' || m.received.encoding !== 'bits') throw new Error('wrong message');
    expect(m.received.bits.buffer).toBe(bytes.buffer);
    expect([...m.received.bits]).toEqual([...bits]);
  });
});

describe('page frame decoding', () => {
  const pages = new Uint8Array(2 * 4096).map((_, i) => i & 0xff);
  const bulk = ctx({ channel: 'bulk', state: 'postcopy-active' });

  it('hands out the payload as a subarray of the received frame', () => {
    const frame = encodePages(pageIndex(3), 2, pages);
    const m = decodeMessage(frame, bulk);
    if (m.type !== 'pages') throw new Error('wrong message');
    expect(m.payload.buffer).toBe(frame.buffer);
    expect(m.payload.byteOffset).toBe(frame.byteOffset + PAGE_FRAME_HEADER_BYTES);
    expect(Buffer.compare(m.payload, pages)).toBe(0);
    expect(m).toMatchObject({ start: 3, count: 2, precopy: false });
  });

  it('accepts postcopy frames read after this side paused: pages sent before the connection broke', () => {
    for (const channel of ['bulk', 'urgent'] as const) {
      expect(decodeMessage(encodeZeroRun(pageIndex(10), 20), ctx({ channel, state: 'postcopy-paused' }))).toMatchObject({ type: 'zero-run' });
    }
  });

  it('decodes a zero-run marker with no payload', () => {
    expect(decodeMessage(encodeZeroRun(pageIndex(10), 20), bulk)).toEqual({ type: 'zero-run', start: 10, count: 20, precopy: false });
  });

  it('refuses a payload whose length is not count * pageSize', () => {
    const frame = encodePages(pageIndex(3), 2, pages).subarray(0, PAGE_FRAME_HEADER_BYTES + 4096 + 1);
    const err = errorOf(() => decodeMessage(frame, bulk));
    expect(err.code).toBe('PROTO_ERR_MALFORMED');
    expect(err.message).toMatch(/carries 4097 bytes; expected count \* pageSize = 8192/);
  });

  it('refuses pages beyond RAM', () => {
    const err = errorOf(() => decodeMessage(encodeZeroRun(pageIndex(60), 10), bulk));
    expect(err.message).toMatch(/pages 60\.\.69, beyond the 64 pages/);
  });

  it('refuses a frame from another protocol version', () => {
    const frame = encodeZeroRun(pageIndex(1), 1);
    frame[1] = 7;
    expect(errorOf(() => decodeMessage(frame, bulk)).code).toBe('PROTO_ERR_VERSION');
  });

  it('refuses a frame larger than the page batch limit', () => {
    const frame = Buffer.alloc(PAGE_FRAME_HEADER_BYTES + 257 * 4096);
    encodeZeroRun(pageIndex(0), 1).copy(frame);
    expect(errorOf(() => decodeMessage(frame, bulk)).code).toBe('PROTO_ERR_TOO_LARGE');
  });

  it('takes precopy frames on bulk only, from setup on (precopy-begin may still be unread), postcopy frames on bulk and urgent only', () => {
    const precopy = encodePages(pageIndex(0), 1, pages.subarray(0, 4096), true);
    expect(decodeMessage(precopy, ctx({ channel: 'bulk', state: 'setup' })).type).toBe('pages');
    expect(decodeMessage(precopy, ctx({ channel: 'bulk', state: 'precopy-active' })).type).toBe('pages');
    expect(errorOf(() => decodeMessage(precopy, ctx())).message).toMatch(/'precopy-frame' is not allowed on the control channel; it belongs on bulk/);
    expect(errorOf(() => decodeMessage(precopy, ctx({ channel: 'urgent', state: 'precopy-active' }))).message).toMatch(/'precopy-frame' is not allowed on the urgent channel/);
    expect(errorOf(() => decodeMessage(precopy, ctx({ channel: 'bulk', state: 'postcopy-active' }))).code).toBe('PROTO_ERR_STATE');
    const postcopy = encodeZeroRun(pageIndex(0), 1);
    expect(errorOf(() => decodeMessage(postcopy, ctx())).message).toMatch(/'postcopy-frame' is not allowed on the control channel/);
    expect(errorOf(() => decodeMessage(postcopy, ctx({ channel: 'urgent', state: 'device' }))).code).toBe('PROTO_ERR_STATE');
  });
});

const session = fc.stringMatching(/^[A-Za-z0-9_-]{8,64}$/);
const page = fc.integer({ min: 0, max: PAGES - 1 });
const runs = fc.array(fc.tuple(fc.integer({ min: 0, max: PAGES - 1 }), fc.integer({ min: 1, max: 8 })), { maxLength: 8 }).map((rs) =>
  rs.filter(([s, n]) => s + n <= PAGES).flat(),
);

// Each arbitrary pairs a message with a context in which it may arrive.
const messages: fc.Arbitrary<[ControlMessage, Partial<DecodeContext>]>[] = [
  fc.record({
    type: fc.constant('hello' as const),
    channel: fc.constantFrom('control' as const, 'bulk' as const, 'urgent' as const),
    token: fc.string({ maxLength: 256 }),
    session,
    resume: fc.boolean(),
    pageSize: fc.constant(4096),
    ramBase: fc.nat(),
    ramSize: fc.integer({ min: 1, max: 1 << 20 }).map((n) => n * 4096),
    vcpus: fc.integer({ min: 1, max: 64 }),
    imageSha256: fc.stringMatching(/^[0-9a-f]{64}$/),
  }).map((m) => [m, { state: 'setup', handshaking: true }]),
  runs.map((r) => [{ type: 'discard', runs: r }, {}]),
  fc.nat().map((pages) => [{ type: 'precopy-sync', pages }, {}]),
  // msgpackr renames a "__proto__" key (to "__proto_") rather than let a peer set a prototype; fast-check
  // likes generating that key, so such values are left to the test below that checks the renaming.
  fc
    .record({ type: fc.constant('machine-state' as const), state: fc.jsonValue().filter((v) => !JSON.stringify(v ?? null).includes('"__proto__"')) })
    .map((m) => [m, { state: 'setup' }]),
  fc.constant([{ type: 'postcopy-run' }, { state: 'device' }]),
  fc.record({ type: fc.constant('cancel' as const), reason: fc.string({ maxLength: 200 }) }).map((m) => [m, {}]),
  fc.record({ type: fc.constant('error' as const), code: fc.string({ maxLength: 64 }), message: fc.string({ maxLength: 300 }) }).map((m) => [m, {}]),
  fc.array(page, { minLength: 1, maxLength: 50 }).map((pages) => [
    { type: 'page-request', pages: pages.map(pageIndex) },
    { receiver: 'source', channel: 'urgent', state: 'postcopy-active' },
  ]),
  runs.map((r) => [{ type: 'recover', received: { encoding: 'runs', runs: r } }, { receiver: 'source', state: 'postcopy-paused' }]),
  fc.integer({ min: 0, max: PAGES }).map((n) => [{ type: 'complete', pages: n }, { receiver: 'source', state: 'postcopy-active' }]),
];

function withoutNegativeZero(value: unknown): unknown {
  if (Object.is(value, -0)) return 0;
  if (Array.isArray(value)) return value.map(withoutNegativeZero);
  if (typeof value === 'object' && value !== null && !(value instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutNegativeZero(v)]));
  }
  return value;
}

describe('protocol properties', () => {
  it('a peer cannot set a prototype through a "__proto__" key', () => {
    const state = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as unknown;
    const decoded = decodeMessage(encodeControl({ type: 'machine-state', state }), ctx({ state: 'setup' }));
    const received = (decoded as { state: Record<string, unknown> }).state;
    expect(Object.getPrototypeOf(received)).toBe(Object.prototype);
    expect((received as { polluted?: unknown }).polluted).toBeUndefined();
    expect(received.a).toBe(1);
  });

  it('every valid control message survives encode → decode unchanged', () => {
    fc.assert(
      fc.property(fc.oneof(...messages), ([message, over]) => {
        // msgpack, like JSON.stringify, writes -0 as the integer 0 (fast-check found it: seed -1440623842).
        const decoded = decodeMessage(encodeControl(message), ctx(over));
        expect(decoded).toEqual(withoutNegativeZero(message));
      }),
    );
  });

  it('random bytes never throw anything but a typed protocol error', () => {
    const contexts = fc.record({
      receiver: fc.constantFrom('source' as const, 'destination' as const),
      channel: fc.constantFrom('control' as const, 'bulk' as const, 'urgent' as const),
      state: fc.constantFrom('setup' as const, 'precopy-active' as const, 'device' as const, 'postcopy-active' as const, 'postcopy-paused' as const),
      handshaking: fc.boolean(),
    });
    const inputs = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.uint8Array({ maxLength: 64 }).map((tail) => Buffer.concat([Buffer.from([0xc1, PROTOCOL_VERSION]), tail])),
      // Page requests' kind, so that their decoder meets every malformation too.
      fc.uint8Array({ maxLength: 64 }).map((tail) => Buffer.concat([Buffer.from([0xc1, PROTOCOL_VERSION, 3]), tail])),
      fc.oneof(...messages).map(([m]) => encodeControl(m)),
      fc.dictionary(fc.string({ maxLength: 8 }), fc.anything()).map((o) => raw(o)),
    );
    fc.assert(
      fc.property(inputs, contexts, (bytes, c) => {
        try {
          decodeMessage(bytes, { ...c, layout });
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
