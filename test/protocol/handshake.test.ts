import { once } from 'node:events';
import { pack } from 'msgpackr';
import WebSocket from 'ws';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateSessionId, generateToken, tokensEqual } from '../../src/protocol/auth.ts';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connectMigration, DestinationUnreachableError } from '../../src/protocol/connect.ts';
import { ProtocolError } from '../../src/protocol/errors.ts';
import { MigrationListener, type IncomingMigration } from '../../src/protocol/listener.ts';
import type { MachineIdentity } from '../../src/protocol/messages.ts';
import { MigrationStateMachine } from '../../src/protocol/state.ts';
import { PROTOCOL_VERSION } from '../../src/protocol/version.ts';
import { memoryLog } from './log-sink.ts';

const identity: MachineIdentity = {
  pageSize: 4096,
  ramBase: 0x8000_0000,
  ramSize: 16 * 1024 * 1024,
  vcpus: 2,
  imageSha256: 'a'.repeat(64),
};

describe('migration handshake', () => {
  const token = generateToken();
  const sink = memoryLog();
  let destState: MigrationStateMachine;
  let listener: MigrationListener;
  let url: string;

  beforeEach(async () => {
    destState = new MigrationStateMachine();
    listener = await MigrationListener.listen({ token, pageSize: 4096, expect: { vcpus: 2 }, state: destState, log: sink.log });
    url = `ws://127.0.0.1:${listener.port}`;
  });

  afterEach(async () => {
    await listener.close();
  });

  function connect(over: Partial<Parameters<typeof connectMigration>[0]> = {}) {
    return connectMigration({ url, token, session: generateSessionId(), identity, state: new MigrationStateMachine(), log: sink.log, ...over });
  }

  async function refusal(p: Promise<unknown>): Promise<ProtocolError> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ProtocolError);
    return err as ProtocolError;
  }

  it('connects control, bulk and urgent of one session and reports it once', async () => {
    const incoming = new Promise<IncomingMigration>((resolve) => listener.onMigration(resolve));
    const channels = await connect();
    const m = await incoming;
    expect(m.identity).toEqual(identity);
    expect(m.resume).toBe(false);
    expect(Object.keys(m.channels).sort()).toEqual(['bulk', 'control', 'urgent']);
    for (const c of Object.values(channels)) c.close();
  });

  it('refuses a wrong token with PROTO_ERR_AUTH and close code 4401, and stays up', async () => {
    const err = await refusal(connect({ token: 'not-the-token' }));
    expect(err.code).toBe('PROTO_ERR_AUTH');
    expect(err.message).toMatch(/wrong migration token .*\(--token or POSTCOPY_TOKEN\)/);
    const raw = new WebSocket(`${url}/control`);
    await once(raw, 'open');
    raw.send(pack({ v: PROTOCOL_VERSION, type: 'hello', channel: 'control', token: 'x', session: generateSessionId(), resume: false, ...identity }));
    const [code] = (await once(raw, 'close')) as [number];
    expect(code).toBe(4401);
    const ok = await connect();
    ok.control.close();
  });

  it('refuses a machine mismatch naming both values', async () => {
    const err = await refusal(connect({ identity: { ...identity, vcpus: 4 } }));
    expect(err.code).toBe('PROTO_ERR_MISMATCH');
    expect(err.message).toMatch(/vCPU count mismatch: the source sends 4, this destination expects 2/);
    const page = await refusal(connect({ identity: { ...identity, pageSize: 16384 } }));
    expect(page.message).toMatch(/page size mismatch: the source sends 16384 bytes, this destination expects 4096 bytes/);
  });

  it('refuses another protocol version with close code 4426 and a message naming both', async () => {
    const raw = new WebSocket(`${url}/control`);
    await once(raw, 'open');
    const replies: Buffer[] = [];
    raw.on('message', (d: Buffer) => replies.push(d));
    raw.send(pack({ v: PROTOCOL_VERSION + 1, type: 'hello' }));
    const [code] = (await once(raw, 'close')) as [number];
    expect(code).toBe(4426);
    const { unpack } = await import('msgpackr');
    expect(unpack(replies[0])).toMatchObject({ type: 'error', code: 'PROTO_ERR_VERSION' });
    expect(sink.lines().some((l) => l.msg.includes(`protocol version ${PROTOCOL_VERSION + 1}, this side speaks ${PROTOCOL_VERSION}`))).toBe(true);
  });

  it('refuses a second migration while one is under way', async () => {
    const first = await connect();
    const err = await refusal(connect());
    expect(err.code).toBe('PROTO_ERR_STATE');
    expect(err.message).toMatch(/already receiving migration/);
    first.control.close();
  });

  it('closes a channel that sends garbage after its handshake, with the error on the wire', async () => {
    const incoming = new Promise<IncomingMigration>((resolve) => listener.onMigration(resolve));
    const channels = await connect();
    const m = await incoming;
    const closed = new Promise<[number, string, ProtocolError | undefined]>((resolve) => m.channels.bulk.onClose((code, reason, error) => resolve([code, reason, error])));
    channels.bulk.sendBytes(Buffer.from([0x93, 0x01]));
    const [code, , error] = await closed;
    expect(code).toBe(4400);
    expect(error?.code).toBe('PROTO_ERR_MALFORMED');
    expect(channels.control.open).toBe(true);
    channels.control.close();
  });

  it('names the address and what to do when nothing there is a destination', async () => {
    const closed = await MigrationListener.listen({ token, pageSize: 4096, expect: { vcpus: 2 }, state: new MigrationStateMachine(), log: sink.log });
    const closedUrl = `ws://127.0.0.1:${closed.port}`;
    await closed.close();
    const refused = await connect({ url: closedUrl }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DestinationUnreachableError);
    expect((refused as Error).message).toMatch(
      new RegExp(`^cannot connect to the destination at ${closedUrl}: connect ECONNREFUSED .*; is \`postcopy destination --listen HOST:PORT\` running there`),
    );
    // An HTTP server that is not a destination, as the source's own control endpoint is.
    const http = createServer((_req, res) => res.writeHead(401).end());
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    try {
      const httpUrl = `ws://127.0.0.1:${(http.address() as AddressInfo).port}`;
      const notDestination = await connect({ url: httpUrl }).catch((e: unknown) => e);
      expect(notDestination).toMatchObject({
        code: 'MIGRATE_ERR_CONNECT',
        message: `${httpUrl} answered HTTP 401, not a postcopy destination's WebSocket: give the address \`postcopy destination\` is listening on (ws://HOST:PORT)`,
      });
    } finally {
      http.close();
    }
  });

  it('compares tokens in constant time over any lengths', () => {
    expect(tokensEqual('abc', 'abc')).toBe(true);
    expect(tokensEqual('abc', 'abcd')).toBe(false);
    expect(tokensEqual('', generateToken())).toBe(false);
  });
});
