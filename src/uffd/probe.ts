// The access-control probe behind `postcopy doctor`: for each access path,
// whether it opens here (and if not, the errno and the fix), and whether it
// handles kernel faults, found by the write(2) trial rather than assumed.
import type { Logger } from '../log.ts';
import { ADVICE, UffdError } from './errors.ts';
import { hostFacts, type HostFacts } from './host-access.ts';
import { tryKernelFault, type KernelFaultOutcome } from './kernel-fault-trial.ts';
import { DEFAULT_DEVICE, openPath } from './open.ts';
import { ACCESS_PATHS, type AccessPath, type Userfaultfd } from './userfaultfd.ts';

export interface PathReport {
  readonly name: AccessPath;
  readonly available: boolean;
  /** Measured: the write(2) trial's fault was delivered and the write completed with the placed bytes. */
  readonly handlesKernelFaults: boolean;
  /** Why the path is refused, or why a kernel fault fails on it (EFAULT); null when neither. */
  readonly errno: string | null;
  readonly advice: string | null;
  /** The UFFD_ERR_* code of a refusal. */
  readonly code: string | null;
  /** One line saying what happened. */
  readonly detail: string;
  /** The write(2) trial, when the path opened. */
  readonly kernelFault: KernelFaultOutcome | null;
}

export interface DoctorReport extends HostFacts {
  readonly paths: readonly PathReport[];
  /** The path `openUserfaultfd({ path: 'auto' })` takes here. */
  readonly auto: AccessPath | null;
}

export interface ProbeOptions {
  devicePath?: string;
  logger?: Logger;
}

function describeTrial(t: KernelFaultOutcome): string {
  if (t.handled) return 'kernel faults handled: write(2) from a missing page slept until the page was placed, then wrote it';
  if (t.errno) return `kernel faults not handled: write(2) from a missing page failed with ${t.errno}${t.faultDelivered ? '' : ', no fault delivered'}`;
  if (t.timedOut) return 'kernel faults not handled: write(2) from a missing page never completed';
  if (!t.faultDelivered) return 'kernel faults not handled: write(2) read the page without any fault being delivered';
  return `kernel faults not handled: fault delivered but the file does not hold the placed page (wrote ${t.written})`;
}

function adviceFor(uffd: Userfaultfd, t: KernelFaultOutcome): string | null {
  if (t.handled) return null;
  return uffd.backend === 'sim' ? ADVICE.simKernelFaults : ADVICE.userModeOnly;
}

export async function probePath(name: AccessPath, options: ProbeOptions = {}): Promise<PathReport> {
  let uffd: Userfaultfd;
  try {
    uffd = openPath(name, { devicePath: options.devicePath, logger: options.logger });
  } catch (err) {
    if (!(err instanceof UffdError)) throw err;
    return {
      name,
      available: false,
      handlesKernelFaults: false,
      errno: err.errno ?? null,
      advice: err.advice ?? null,
      code: err.code,
      detail: err.message,
      kernelFault: null,
    };
  }
  try {
    const trial = await tryKernelFault(uffd);
    if (trial.handled !== uffd.handlesKernelFaults) {
      options.logger?.warn(
        { path: name, declared: uffd.handlesKernelFaults, measured: trial.handled },
        'userfaultfd: handlesKernelFaults disagrees with the write(2) trial',
      );
    }
    return {
      name,
      available: true,
      handlesKernelFaults: trial.handled,
      errno: trial.errno,
      advice: adviceFor(uffd, trial),
      code: null,
      detail: `opens; ${describeTrial(trial)}`,
      kernelFault: trial,
    };
  } finally {
    uffd.close();
  }
}

/** Every access path in `auto` order, one at a time (each trial starts a worker). */
export async function probeAccessPaths(options: ProbeOptions = {}): Promise<PathReport[]> {
  const reports: PathReport[] = [];
  for (const name of ACCESS_PATHS) reports.push(await probePath(name, options));
  return reports;
}

export async function diagnose(options: ProbeOptions = {}): Promise<DoctorReport> {
  const facts = hostFacts(options.devicePath ?? DEFAULT_DEVICE);
  const paths = await probeAccessPaths(options);
  return { ...facts, paths, auto: paths.find((p) => p.available)?.name ?? null };
}
