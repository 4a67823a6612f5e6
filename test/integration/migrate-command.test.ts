// `postcopy migrate` as a person runs it against a running source and
// destination (three real processes): on a terminal it draws a progress bar
// and prints the final figures; a wrong token or a source that is not there
// is refused with what to do, and leaves the source's guest untouched.
import { describe, expect, it, onTestFinished } from 'vitest';
import { childGroup, noTerminal, postcopy, reference, TerminalPostcopy, WRITTEN_8M_GUEST } from './processes.ts';

// Migrated at INSTRUCTIONS, after its working set is written, so the push has data pages to
// move (at 8 MiB/s: about a second of progress bar).
const INSTRUCTIONS = '3000000';
const END = '3100000';

describe.skipIf(noTerminal('postcopy migrate terminal tests'))('postcopy migrate', () => {
  it('refuses a wrong token and an absent source, then follows the migration with a progress bar to an intact guest', async () => {
    const group = childGroup();
    onTestFinished(() => group.killAll());
    const destination = group.spawn('destination', ['destination', '--listen', '127.0.0.1:0', '--instructions', END]);
    const source = group.spawn('source', ['source', ...WRITTEN_8M_GUEST, '--instructions', END, '--paused', '--listen', '127.0.0.1:0']);
    const to = (await destination.waitFor('listening')).url as string;
    const control = (await source.waitFor('listening')).control as string;

    const wrongToken = await postcopy(['migrate', '--source', control, '--to', to, '--token', 'f'.repeat(32)]);
    expect(wrongToken.code).not.toBe(0);
    expect(wrongToken.stderr).toMatch(/postcopy migrate: missing or wrong token: .*the token the source was started with \[MONITOR_ERR_AUTH\]/);
    const absent = await postcopy(['migrate', '--source', 'http://127.0.0.1:9', '--to', to], { POSTCOPY_TOKEN: group.token });
    expect(absent.code).not.toBe(0);
    expect(absent.stderr).toMatch(/cannot reach the source's control endpoint at http:\/\/127\.0\.0\.1:9: .*is `postcopy source` running there\? \[CLI_ERR_CONTROL\]/);

    const terminal = new TerminalPostcopy(
      ['migrate', '--source', control, '--to', to, '--after-instructions', INSTRUCTIONS, '--max-postcopy-bandwidth', '8M'],
      { POSTCOPY_TOKEN: group.token, POSTCOPY_LOG: 'warn' },
    );
    onTestFinished(() => terminal.kill());
    expect(await terminal.exit()).toBe(0);
    expect(terminal.shown).toMatch(/migrating \[[█░]+\] \d+% \| postcopy-active \| \d+\/8192 pages/);
    expect(terminal.shown).toMatch(/Migration status: completed \(postcopy\)/);
    expect(terminal.shown).toMatch(/remaining: 0 of 8192 pages/);

    const finished = await destination.waitFor('finished');
    const straight = await reference([...WRITTEN_8M_GUEST, '--instructions', END]);
    expect(finished.stateHash).toBe(straight.stateHash);
    expect(source.consoleText + destination.consoleText).toBe(straight.console);
  });
});
