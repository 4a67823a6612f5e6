// Fault figures: latency from fault event to page placed, as an HDR
// histogram in microseconds, and vCPU blocktime in QEMU's sense: the sum over
// faults of the time each thread slept, so two threads blocked at once both count.
import * as hdr from 'hdr-histogram-js';

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
  count: number;
}

export class FaultStats {
  readonly latencyUs = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
  private blockedMs = 0;

  /** One thread's fault, from its event (at `sinceMs`) to the placement (at `nowMs`). */
  record(sinceMs: number, nowMs: number): void {
    const ms = Math.max(0, nowMs - sinceMs);
    this.blockedMs += ms;
    this.latencyUs.recordValue(Math.max(1, Math.round(ms * 1000)));
  }

  get blocktimeMs(): number {
    return this.blockedMs;
  }

  summary(): LatencySummary {
    const h = this.latencyUs;
    return {
      p50: h.getValueAtPercentile(50),
      p90: h.getValueAtPercentile(90),
      p99: h.getValueAtPercentile(99),
      max: h.maxValue,
      count: h.totalCount,
    };
  }
}
