// The source's interactive monitor, typed into on a real terminal: the source
// runs under script(1), which gives it a pseudo-terminal, so it offers the
// prompt exactly as it does to a person. The destination is a real process
// too; nothing here fakes either side.
import { describe, expect, it, onTestFinished } from 'vitest';
import { PAGE_FRAME_HEADER_BYTES } from '../../src/protocol/page-frame.ts';
import { childGroup, noTerminal, reference, TerminalPostcopy, WRITTEN_8M_GUEST } from './processes.ts';

const PAGE = 4096;
const CAP = 4 * 1024 * 1024;
const BURST = PAGE_FRAME_HEADER_BYTES + 64 * PAGE;
// The source stops the guest at INSTRUCTIONS, after it wrote its working set
// ("pass 1"), and the destination runs it no further, so its data pages come
// by the capped push.
const INSTRUCTIONS = '3000000';

describe.skipIf(noTerminal('monitor prompt tests'))('the source monitor prompt on a terminal', () => {
  it('refuses a bad bandwidth and stays up, then migrates with the push capped, intact', async () => {
    const group = childGroup();
    onTestFinished(() => group.killAll());
    const destination = group.spawn('destination', ['destination', '--listen', '127.0.0.1:0', '--instructions', INSTRUCTIONS]);
    const url = (await destination.waitFor('listening')).url as string;
    const source = new TerminalPostcopy(['source', ...WRITTEN_8M_GUEST, '--instructions', INSTRUCTIONS, '--listen', '127.0.0.1:0'], { POSTCOPY_TOKEN: group.token, POSTCOPY_LOG: 'warn' });
    onTestFinished(() => source.kill());
    await source.waitFor(/\(postcopy\) /);
    await source.waitFor(/memwork: pass 1 sum/);

    source.type(`migrate ${url} --max-postcopy-bandwidth fast`);
    await source.waitFor(/error: migrate: --max-postcopy-bandwidth: .*"fast" is not understood/);
    source.type('info migrate');
    await source.waitFor(/no migration yet/);
    source.type('migrate_set_parameter downtime-limit soon');
    await source.waitFor(/error: migrate_set_parameter: downtime-limit is in milliseconds, e.g. 500 \(got "soon"\)/);
    source.type('migrate_set_parameter downtime-limit 2500');
    source.type('info migrate_parameters');
    await source.waitFor(/downtime-limit: 2500 ms\s+max-bandwidth: unlimited\s+max-postcopy-bandwidth: unlimited/);

    const typedAt = performance.now();
    source.type(`migrate ${url} --mode postcopy --max-postcopy-bandwidth 4M`);
    await source.waitFor(/migration started/);
    const finished = await destination.waitFor('finished');
    const elapsedMs = performance.now() - typedAt;
    expect(await source.exit()).toBe(0);

    const straight = await reference([...WRITTEN_8M_GUEST, '--instructions', INSTRUCTIONS]);
    expect(finished.stateHash).toBe(straight.stateHash);
    // Data pages that came by the push (placed counts zero pages too; requested pages are never capped).
    const pushedBytes = ((finished.placedPages as number) - (finished.zeroPages as number) - (finished.postcopyRequests as number)) * PAGE;
    expect(pushedBytes).toBeGreaterThan(16 * BURST);
    // A lower bound only: a slow machine takes longer, never shorter.
    expect(elapsedMs).toBeGreaterThanOrEqual((1000 * (pushedBytes - 2 * BURST)) / CAP);
  });
});
