import { describe, expect, it } from 'vitest';
import { HANDSHAKE_REHEARSAL_ROUNDS, rehearseHandshake } from '../../src/protocol/handshake-rehearsal.ts';
import { memoryLog } from './log-sink.ts';

const sockets = (): number => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap').length;

describe('handshake rehearsal', () => {
  it('takes every round through hello and welcome, quietly, and leaves no socket or listener open', async () => {
    const sink = memoryLog('debug');
    const before = sockets();
    expect(await rehearseHandshake(sink.log)).toBe(HANDSHAKE_REHEARSAL_ROUNDS);
    // The listeners' servers finish closing a few loop turns after their 'close'.
    for (let i = 0; i < 200 && sockets() !== before; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(sockets()).toBe(before);
    expect(sink.lines().filter((l) => l.level >= 40)).toEqual([]);
    expect(sink.lines().some((l) => /rehearsal failed/.test(l.msg))).toBe(false);
  });
});
