// Every migration mode, 1 and 4 vCPUs, the kernel userfaultfd and the
// software backend: the guest migrated between two processes must end in the
// same state, with the same console, as a run that never migrated.
import { describe, expect, it } from 'vitest';
import { MIGRATION_MODES } from '../../src/source/migration-info.ts';
import { demo } from './processes.ts';

const backends = ['dev', 'sim'] as const;
const cases = MIGRATION_MODES.flatMap((mode) => [1, 4].flatMap((vcpus) => backends.map((uffd) => ({ mode, vcpus, uffd }))));

describe('a migrated guest ends exactly where an unmigrated one does', () => {
  it.each(cases)('$mode migration, $vcpus vCPU(s), userfaultfd $uffd', async ({ mode, vcpus, uffd }) => {
    const s = await demo([
      '--guest', 'memwork', '--guest-args', 'wss=512K pattern=random write=50 passes=0 beat=4',
      '--ram', '32M', '--vcpus', String(vcpus), '--mode', mode, '--uffd', uffd,
      '--after-instructions', '1500000', '--instructions', '4000000',
    ]);
    expect(s.verified).toBe(true);
    expect(s.mode).toBe(mode);
    expect(s.vcpus).toBe(vcpus);
    expect(s.backend).toBe(uffd);
    if (mode === 'precopy') expect(s.precopyRounds).toBeGreaterThan(0);
  });
});
