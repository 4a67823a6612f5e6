// Test tools from the system (QEMU, the cross compiler). test/global-setup.ts
// installs them once per run through scripts/install-test-deps.sh; a suite
// only asks whether one is there, and prints the returned reason when not.
import { spawnSync } from 'node:child_process';

/** undefined when `command` can be used, otherwise why not. */
export function missingTool(command: string): string | undefined {
  if (spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0) return undefined;
  return `${command} is not installed (test/global-setup.ts runs scripts/install-test-deps.sh; see its line at the start of the run)`;
}
