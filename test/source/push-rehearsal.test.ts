// The source's push rehearsal runs the push thread's PushService over a real
// socket pair into a sink that checks every page it decodes: what arrives
// must be what the scratch region holds, and a migration must be able to end
// it at once, with nothing left open, since every source's push thread runs it.
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PUSH_REHEARSAL_ROUNDS, rehearsePush } from '../../src/source/push-rehearsal.ts';
import { memoryLog } from '../protocol/log-sink.ts';

const openDescriptors = (): number => readdirSync('/proc/self/fd').length;
// 2048 patterned pages, then 1024 never written. Held pages cut the runs in
// every other round: 146 of the patterned half.
const PATTERN_PAGES = 2048;
const SCRATCH_PAGES = PATTERN_PAGES + 1024;
const HELD = Math.ceil((PATTERN_PAGES / 2 - 3) / 7);

describe('the push rehearsal', () => {
  it('delivers every page of every round as the scratch region holds it', async () => {
    const { log, lines } = memoryLog('warn');
    const result = await rehearsePush(log, new AbortController().signal);
    const expected = PUSH_REHEARSAL_ROUNDS * SCRATCH_PAGES - (PUSH_REHEARSAL_ROUNDS / 2) * HELD;
    expect(result).toMatchObject({ rounds: PUSH_REHEARSAL_ROUNDS, pagesPushed: expected, pagesReceived: expected, verified: true });
    expect(lines()).toEqual([]);
  });

  it('ends when aborted, part-way through a round, and closes what it opened', async () => {
    const { log } = memoryLog('warn');
    await rehearsePush(log, new AbortController().signal);
    const before = openDescriptors();
    const controller = new AbortController();
    const rehearsal = rehearsePush(log, controller.signal);
    setTimeout(() => controller.abort(), 20);
    const result = await rehearsal;
    expect(result.rounds).toBeLessThan(PUSH_REHEARSAL_ROUNDS);
    expect(result.verified).toBe(true);
    // The sink's side of the socket closes once the kernel delivers the reset.
    await expect.poll(openDescriptors).toBe(before);
  });

  it('returns at once when aborted before it starts', async () => {
    const { log } = memoryLog('warn');
    const controller = new AbortController();
    controller.abort();
    expect(await rehearsePush(log, controller.signal)).toMatchObject({ rounds: 0, pagesPushed: 0 });
  });
});
