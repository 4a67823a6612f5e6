// What the MIPS benchmarks (bench/mips.ts: the vCPU core alone; bench/guest-mips.ts:
// the whole machine) report and how: the target, best-slice and mean figures,
// and one formatted column pair per figure.

export const TARGET_MIPS = 100;

export interface MipsFigure {
  /** Over the fastest slice: the speed when it had a CPU to itself (the cores are shared). */
  best: number;
  /** Over the whole measurement, lowered by whatever else ran on the machine. */
  mean: number;
}

/** Tracks slices of `instructions` each taking some milliseconds. */
export class MipsMeter {
  private instructions = 0;
  private milliseconds = 0;
  private best = 0;

  add(instructions: number, milliseconds: number): void {
    this.instructions += instructions;
    this.milliseconds += milliseconds;
    this.best = Math.max(this.best, instructions / milliseconds / 1000);
  }

  get elapsedMs(): number {
    return this.milliseconds;
  }

  figure(): MipsFigure {
    return { best: this.best, mean: this.instructions / this.milliseconds / 1000 };
  }
}

/** "  123.4 MIPS   1.23×": the rate and its ratio to the target. */
export function formatMips(mips: number): string {
  return `${mips.toFixed(1).padStart(7)} MIPS ${(mips / TARGET_MIPS).toFixed(2).padStart(6)}×`;
}

export function formatFigure(figure: MipsFigure): string {
  return `${formatMips(figure.best)}  ${formatMips(figure.mean)}`;
}
