// `postcopy doctor`: which userfaultfd access paths work on this host and why,
// from src/uffd/probe.ts; this file only prints the report.
import { Command } from 'commander';
import { diagnose, type DoctorReport, type PathReport } from '../uffd/probe.ts';
import { DEFAULT_DEVICE } from '../uffd/open.ts';
import { reportErrors } from './options.ts';

interface DoctorOptions {
  json?: boolean;
  device: string;
}

function deviceLine(r: DoctorReport): string {
  const d = r.device;
  if (!d.exists) return `${d.path}: missing (needs Linux 6.1+ with CONFIG_USERFAULTFD)`;
  const owner = `${d.owner ?? d.uid}:${d.group ?? d.gid}`;
  const kind = d.isCharacterDevice ? `char ${d.major}:${d.minor}` : 'not a character device';
  return `${d.path}: ${kind}, ${owner} ${d.mode}; read-write for us: ${d.readWrite ? 'yes' : 'no'}`;
}

function sysctlLine(value: number | null): string {
  if (value === null) return 'vm.unprivileged_userfaultfd: absent';
  const meaning =
    value === 1
      ? 'any user may have kernel faults delivered through userfaultfd(2)'
      : 'userfaultfd(2) delivers kernel faults only with CAP_SYS_PTRACE';
  return `vm.unprivileged_userfaultfd = ${value} (${meaning})`;
}

function pathLines(p: PathReport): string {
  const mark = !p.available ? '✗' : p.handlesKernelFaults ? '✓' : '~';
  const why = p.available ? p.detail : `refused: ${p.errno ?? p.code}: ${p.detail}`;
  const advice = p.advice ? `\n      advice: ${p.advice}` : '';
  return `  ${mark} ${p.name.padEnd(23)} ${why}${advice}\n`;
}

function human(r: DoctorReport): string {
  const u = r.user;
  const who = `uid ${u.uid}${u.name ? ` (${u.name})` : ''}, gid ${u.gid}, groups ${u.groups.join(',') || 'none'}`;
  const cap = r.capSysPtrace === null ? 'unknown' : r.capSysPtrace ? 'yes (effective)' : 'no';
  return (
    `userfaultfd on this host\n` +
    `  kernel: ${r.platform} ${r.kernel}\n` +
    `  user: ${who}\n` +
    `  ${deviceLine(r)}\n` +
    `  ${sysctlLine(r.unprivilegedUserfaultfd)}\n` +
    `  CAP_SYS_PTRACE: ${cap}\n` +
    `access paths, in the order auto tries them (✓ works with kernel faults, ~ user faults only, ✗ refused):\n` +
    r.paths.map(pathLines).join('') +
    `auto takes: ${r.auto ?? 'nothing works'}\n`
  );
}

async function doctor(options: DoctorOptions): Promise<void> {
  const report = await diagnose({ devicePath: options.device });
  process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : human(report));
}

export const doctorCommand = new Command('doctor')
  .description('which userfaultfd access paths work here, why, and whether each handles kernel-mode faults (tried for real)')
  .option('--json', 'print the report as JSON')
  .option('--device <path>', 'the userfaultfd device node to try for path "dev"', DEFAULT_DEVICE)
  .action(reportErrors('doctor', doctor));
