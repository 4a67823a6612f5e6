// Test tools from the system (QEMU, the cross compiler): present, installed
// once through scripts/install-test-deps.sh, or absent with a reason to print.
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const installer = fileURLToPath(new URL('../../../scripts/install-test-deps.sh', import.meta.url));
let installAttempted = false;

function present(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/** undefined when `command` can be used, otherwise why not. */
export function missingTool(command: string): string | undefined {
  if (present(command)) return undefined;
  if (!installAttempted) {
    installAttempted = true;
    try {
      execFileSync(installer, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 600_000 });
    } catch {
      // Reported below: the tool is still missing.
    }
  }
  return present(command) ? undefined : `${command} is not installed and scripts/install-test-deps.sh could not install it`;
}
