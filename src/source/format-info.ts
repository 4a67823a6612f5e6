// info migrate, for people: QEMU's layout and names.
import type { MigrationInfo } from './migration-info.ts';

export function formatMigrationInfo(i: MigrationInfo): string {
  const ms = (v: number | null): string => (v === null ? '-' : `${v.toFixed(1)} ms`);
  const mib = (b: number): string => `${(b / 1048576).toFixed(1)} MiB`;
  const rate = (b: number): string => (b === 0 ? 'unlimited' : `${mib(b)}/s`);
  return [
    `Migration status: ${i.status} (${i.mode})`,
    `total time: ${ms(i.totalMs)}   setup: ${ms(i.setupMs)}   downtime: ${ms(i.downtimeMs)}   expected downtime: ${ms(i.expectedDowntimeMs)}`,
    `transferred: ${mib(i.transferredBytes)}   throughput: ${i.mbps.toFixed(0)} mbps`,
    `remaining: ${i.remainingPages} of ${i.totalPages} pages   normal: ${i.normalPages}   zero: ${i.zeroPages}   precopy: ${i.precopyPages}`,
    `precopy rounds: ${i.precopyRounds}   postcopy requests: ${i.postcopyRequests}${i.cpuThrottlePercentage > 0 ? `   cpu throttle: ${i.cpuThrottlePercentage}%` : ''}`,
    `downtime limit: ${ms(i.downtimeLimitMs)}   max bandwidth: ${rate(i.maxBandwidth)}   max postcopy bandwidth: ${rate(i.maxPostcopyBandwidth)}`,
    ...(i.error ? [`error: ${i.error}`] : []),
  ].join('\n');
}
