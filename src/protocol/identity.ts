// The handshake's machine check: the source's claim against what the
// destination expects, refused with both values named.
import { ProtocolMismatchError } from './errors.ts';
import type { MachineIdentity } from './messages.ts';

const LABELS: Record<keyof MachineIdentity, string> = {
  pageSize: 'page size',
  ramBase: 'RAM base',
  ramSize: 'RAM size',
  vcpus: 'vCPU count',
  imageSha256: 'guest image sha256',
};

function show(key: keyof MachineIdentity, value: number | string): string {
  if (typeof value === 'string') return value;
  if (key === 'ramBase') return `0x${value.toString(16)}`;
  if (key === 'ramSize' || key === 'pageSize') return `${value} bytes`;
  return String(value);
}

/** Throws ProtocolMismatchError on the first field where `claimed` differs from a given `expected` field. */
export function checkIdentity(claimed: MachineIdentity, expected: Partial<MachineIdentity>, expectedBy: string): void {
  for (const key of Object.keys(LABELS) as (keyof MachineIdentity)[]) {
    const want = expected[key];
    if (want === undefined || want === claimed[key]) continue;
    throw new ProtocolMismatchError(
      `${LABELS[key]} mismatch: the source sends ${show(key, claimed[key])}, ${expectedBy} expects ${show(key, want)}; ` +
        'start both sides with the same guest image, RAM size and vCPU count (and matching page sizes)',
    );
  }
}

export function identityOf(m: MachineIdentity): MachineIdentity {
  return { pageSize: m.pageSize, ramBase: m.ramBase, ramSize: m.ramSize, vcpus: m.vcpus, imageSha256: m.imageSha256 };
}
