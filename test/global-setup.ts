// vitest globalSetup, once per run before any suite: installs the system
// packages some suites need (QEMU for guest parity, the RISC-V cross compiler
// for image checks) when missing. Failure is not fatal: those suites check for
// the tools themselves and skip with a printed reason.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// apt-get on a slow mirror; past this the suites skip rather than hold CI up.
const INSTALL_TIMEOUT_MS = 600_000;

export default function setup(): void {
  if (process.env.POSTCOPY_SKIP_TEST_DEPS === '1') {
    process.stdout.write('global-setup: POSTCOPY_SKIP_TEST_DEPS=1, not installing test dependencies\n');
    return;
  }
  const script = fileURLToPath(new URL('../scripts/install-test-deps.sh', import.meta.url));
  const result = spawnSync(script, { stdio: ['ignore', 'inherit', 'inherit'], timeout: INSTALL_TIMEOUT_MS });
  if (result.error) {
    process.stderr.write(`global-setup: ${script} did not finish (${result.error.message}); the suites that need its tools will skip\n`);
  }
}
