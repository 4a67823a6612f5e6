// Follows a migration through the control endpoint until it ends, drawing a
// progress bar (pages still to move) when stderr is a TTY. The final figures
// come from a long poll the source answers before it exits; progress polls
// that fail once it is gone are expected.
import cliProgress from 'cli-progress';
import type { MigrationInfo } from '../source/migration-info.ts';
import type { ControlClient } from './control-client.ts';

const POLL_MS = 100;

export async function followMigration(client: ControlClient, showBar: boolean): Promise<MigrationInfo> {
  const bar = showBar
    ? new cliProgress.SingleBar(
        { format: 'migrating [{bar}] {percentage}% | {status} | {value}/{total} pages | {mbps} mbps', hideCursor: true, stream: process.stderr },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let ended: MigrationInfo | undefined;
  const end = client.migrationEnd().then((info) => (ended = info));
  let started = false;
  try {
    while (!ended && bar) {
      const info = await client.infoMigrate().catch(() => null);
      if (info) {
        const moved = info.totalPages - info.remainingPages;
        const payload = { status: describeStatus(info), mbps: info.mbps.toFixed(0) };
        if (!started) bar.start(info.totalPages, moved, payload);
        else bar.update(moved, payload);
        started = true;
      }
      await Promise.race([end, new Promise((r) => setTimeout(r, POLL_MS))]);
    }
    return await end;
  } finally {
    bar?.stop();
  }
}

// Past its first round a precopy has sent every page and the bar stays full:
// what moves is the round and whether the rest would fit the downtime limit.
function describeStatus(info: MigrationInfo): string {
  if (info.status !== 'precopy-active' || info.expectedDowntimeMs === null) return info.status;
  return `precopy round ${info.precopyRounds + 1}, expected downtime ${info.expectedDowntimeMs.toFixed(0)} ms of ${info.downtimeLimitMs} ms`;
}
