// A thread that ends while the addon watches a userfaultfd for it (a page
// thread terminated mid-rehearsal, say) must not take its process down: the
// handle's close callback lives in the addon, which the thread's teardown
// unloads. In a child process, so a crash fails the test instead of vitest.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { probePaths } from './helpers.ts';

const [dev] = probePaths(['dev']);
if (dev.reason) console.log(`worker-teardown test skipped: /dev/userfaultfd cannot be opened here (${dev.reason})`);

const child = fileURLToPath(new URL('./fixtures/terminated-watcher.cjs', import.meta.url));
const addon = fileURLToPath(new URL('../../build/Release/uffd.node', import.meta.url));

describe.skipIf(dev.reason !== null)('a thread terminated while the addon watches its userfaultfd', () => {
  it.each(['open', 'stop'])('ends cleanly with its watch %s', (mode) => {
    const r = spawnSync(process.execPath, [child, addon, mode], { encoding: 'utf8', timeout: 30_000 });
    expect({ status: r.status, signal: r.signal, stdout: r.stdout.trim() }).toEqual({ status: 0, signal: null, stdout: 'survived' });
  });
});
