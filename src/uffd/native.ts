// Loads the native addon for this thread (each worker gets its own instance;
// the addon is context-aware). On failure, says every path it tried and why.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { NativeAddon } from './addon.d.ts';
import { UffdAddonError } from './errors.ts';

export type { NativeAddon, PollHandle, NativeConstants } from './addon.d.ts';

const require = createRequire(import.meta.url);

function candidates(): string[] {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const paths = [`${root}build/Release/uffd.node`, `${root}build/Debug/uffd.node`];
  const override = process.env.POSTCOPY_UFFD_ADDON;
  return override ? [override, ...paths] : paths;
}

let addon: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (addon) return addon;
  if (process.platform !== 'linux') {
    throw new UffdAddonError(`the userfaultfd addon is Linux-only (this is ${process.platform}); use backend "sim"`);
  }
  const tried: string[] = [];
  for (const path of candidates()) {
    try {
      addon = require(path) as NativeAddon;
      return addon;
    } catch (err) {
      tried.push(`  ${path}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
    }
  }
  throw new UffdAddonError(`cannot load the userfaultfd addon; tried:\n${tried.join('\n')}`, {
    advice: 'build it with `npm install` (or `npx node-gyp rebuild`), or set POSTCOPY_UFFD_ADDON to its path',
  });
}

/** Whether the addon loads here, without throwing. */
export function nativeAvailable(): boolean {
  try {
    loadNative();
    return true;
  } catch {
    return false;
  }
}
