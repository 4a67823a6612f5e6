// Nothing leaks: every open/register/fault/close cycle gives back its
// userfaultfd and its guest RAM mapping. (A vCPU asleep on a fault when the fd
// closes is woken: conformance.test.ts for user faults, kernel-faults.test.ts
// for a fault inside write(2).)
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Harness, PAGE, pagePattern, patternWord, probePaths } from './helpers.ts';

const kernelPaths = probePaths(['dev', 'syscall-user-mode-only']);
for (const { path, reason } of kernelPaths) {
  if (reason) console.log(`leak tests: skipping path "${path}": ${reason}`);
}

const CYCLES = 5;

function openFds(): string[] {
  return fs.readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      return [fs.readlinkSync(`/proc/self/fd/${fd}`)];
    } catch {
      // The fd readdir itself used, gone by now.
      return [];
    }
  });
}

function userfaultfds(): number {
  return openFds().filter((target) => target === 'anon_inode:[userfaultfd]').length;
}

/** Whether any mapping in /proc/self/maps overlaps [address, address+length). */
function mapped(address: number, length: number): boolean {
  return fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .some((line) => {
      const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
      return m !== null && parseInt(m[1], 16) < address + length && parseInt(m[2], 16) > address;
    });
}

async function cycle(path: 'dev' | 'syscall-user-mode-only'): Promise<{ address: number; length: number }> {
  const h = new Harness(path, 32);
  const { address, length } = h.region;
  try {
    h.register();
    // Every page but 12 is served, so a worker can be left asleep on it.
    h.uffd.on('events', (batch) => {
      for (const e of batch) {
        if (e.type === 'pagefault' && e.address !== h.at(12)) h.uffd.copy(e.address, pagePattern((e.address - address) / PAGE));
      }
    });
    expect(mapped(address, length)).toBe(true);
    const r = await h.touch([7, 0, 31]).result;
    expect(r.seen).toEqual([7, 0, 31].map((p) => patternWord(p)));
    // Close with a worker asleep on a missing page: the fd and mapping must go all the same.
    h.touch([12]);
    await h.nextFault();
  } finally {
    await h.dispose();
  }
  return { address, length };
}

describe.each(kernelPaths)('no leaks ($path)', ({ path, reason }) => {
  it.skipIf(reason !== null)(`${CYCLES} open/fault/close cycles give back every fd and mapping`, async () => {
    // One cycle first: Node opens some fds once, on first use of workers and the addon.
    await cycle(path as 'dev');
    const fdsBefore = openFds().length;
    const uffdsBefore = userfaultfds();
    for (let i = 0; i < CYCLES; i++) {
      const { address, length } = await cycle(path as 'dev');
      expect(mapped(address, length)).toBe(false);
      expect(userfaultfds()).toBe(uffdsBefore);
    }
    expect(openFds().length).toBe(fdsBefore);
  });
});
