// Precopy's switchover test: would the pages still dirty go within the
// downtime limit? Like QEMU, it judges by the bytes a round put on the link,
// not the pages it covered: zero pages travel as markers of a few bytes, so a
// first round over a mostly empty gigabyte covers pages ten times faster than
// it moves data. Counting covered pages, a 1 GiB guest with 64 MiB written
// expected a 10 ms stop-and-copy and took 97 ms, over a 30 ms limit.

export interface PrecopyRoundFigures {
  /** Bytes the round put on the link: frames, headers and payloads. */
  readonly wireBytes: number;
  readonly elapsedMs: number;
}

/**
 * Milliseconds the dirty pages would take at the round's link rate. Each is
 * counted as a full page: it may have been written with data since. Infinite
 * when the round measured no rate but pages are left.
 */
export function expectedDowntimeMs(dirtyPages: number, pageSize: number, round: PrecopyRoundFigures): number {
  if (dirtyPages === 0) return 0;
  if (round.wireBytes <= 0) return Infinity;
  const bytesPerMs = round.wireBytes / Math.max(0.001, round.elapsedMs);
  return (dirtyPages * pageSize) / bytesPerMs;
}
