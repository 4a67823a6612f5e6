// vitest globalSetup: installs the system packages some suites need (QEMU for
// guest parity, the RISC-V cross compiler for image checks) when missing.
// Failure is not fatal: those suites skip with a printed reason.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const script = fileURLToPath(new URL('../scripts/install-test-deps.sh', import.meta.url));
  const result = spawnSync(script, { stdio: ['ignore', 'inherit', 'inherit'], timeout: 900_000 });
  if (result.status !== 0) process.stderr.write('global-setup: some test dependencies are missing; the suites that need them will skip\n');
}
