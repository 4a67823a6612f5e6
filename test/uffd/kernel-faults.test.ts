// Faults taken inside the kernel: a worker hands missing registered pages to
// write(2). Through /dev/userfaultfd the faults are delivered and the write
// completes with the placed bytes; under UFFD_USER_MODE_ONLY it fails with EFAULT.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { tryKernelFault, trialPage } from '../../src/uffd/kernel-fault-trial.ts';
import { openPath } from '../../src/uffd/open.ts';
import { Harness, PAGE, pagePattern, patternWord, probePaths, quietLogger } from './helpers.ts';

const [dev, userModeOnly] = probePaths(['dev', 'syscall-user-mode-only']);
for (const { path: p, reason } of [dev, userModeOnly]) {
  if (reason) console.log(`kernel-fault tests: skipping path "${p}": ${reason}`);
}

let dir: string;
let file: string;
let fd: number;
let h: Harness | undefined;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'postcopy-kernel-faults-'));
  file = path.join(dir, 'out');
  fd = fs.openSync(file, 'w+');
});
afterEach(async () => {
  await h?.dispose();
  h = undefined;
  fs.closeSync(fd);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('kernel-mode faults through /dev/userfaultfd', () => {
  const it_ = it.skipIf(dev.reason !== null);

  it_('write(2) from pages partly missing: each missing page is delivered in order, the file gets every placed byte', async () => {
    h = new Harness('dev', 8);
    h.register();
    for (const p of [2, 4]) h.uffd.copy(h.at(p), pagePattern(p));
    h.serveWithPattern();
    const r = await h.writeToFile(fd, 2, 4);
    expect(r).toEqual({ written: 4 * PAGE, errno: null, aborted: false });
    expect(h.faults.map((f) => f.address)).toEqual([h.at(3), h.at(5)]);
    const expected = Buffer.concat([2, 3, 4, 5].map((p) => pagePattern(p)));
    expect(fs.readFileSync(file).equals(expected)).toBe(true);
  });

  it_('the doctor trial reports the fault handled and leaves exactly the placed page in the file', async () => {
    const uffd = openPath('dev', { logger: quietLogger });
    try {
      expect(uffd.handlesKernelFaults).toBe(true);
      const outcome = await tryKernelFault(uffd, { file, timeoutMs: null });
      expect(outcome).toEqual({
        faultDelivered: true,
        written: PAGE,
        errno: null,
        bytesMatch: true,
        timedOut: false,
        handled: true,
      });
      expect(fs.readFileSync(file).equals(Buffer.from(trialPage()))).toBe(true);
    } finally {
      uffd.close();
    }
  });

  it_('closing with a worker asleep inside write(2) wakes it, and the region says aborted', async () => {
    h = new Harness('dev', 4);
    h.register();
    const fault = h.nextFault();
    const written = h.writeToFile(fd, 1, 1);
    expect((await fault).address).toBe(h.at(1));
    h.uffd.close();
    // The kernel retries the fault on memory no longer registered: zeros, flagged by aborted.
    expect(await written).toEqual({ written: PAGE, errno: null, aborted: true });
    expect(fs.readFileSync(file).equals(Buffer.alloc(PAGE))).toBe(true);
  });
});

describe('kernel-mode faults under UFFD_USER_MODE_ONLY', () => {
  const it_ = it.skipIf(userModeOnly.reason !== null);

  it_('write(2) from a missing page fails with EFAULT and no fault is delivered; a user-mode touch still is', async () => {
    h = new Harness('syscall-user-mode-only', 4);
    h.register();
    h.serveWithPattern();
    expect(h.uffd.handlesKernelFaults).toBe(false);
    expect(await h.writeToFile(fd, 1, 1)).toEqual({ written: null, errno: 'EFAULT', aborted: false });
    expect(h.faults).toHaveLength(0);
    expect(fs.statSync(file).size).toBe(0);

    const touched = await h.touch([1]).result;
    expect(touched).toMatchObject({ seen: [patternWord(1)], error: null });
    expect(h.faults.map((f) => f.address)).toEqual([h.at(1)]);
  });

  it_('the doctor trial reports EFAULT, not handled', async () => {
    const uffd = openPath('syscall-user-mode-only', { logger: quietLogger });
    try {
      expect(await tryKernelFault(uffd, { file, timeoutMs: null })).toEqual({
        faultDelivered: false,
        written: null,
        errno: 'EFAULT',
        bytesMatch: false,
        timedOut: false,
        handled: false,
      });
    } finally {
      uffd.close();
    }
  });
});
