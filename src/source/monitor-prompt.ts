// The interactive monitor on a TTY, in QEMU HMP's words:
//   migrate URL [--mode postcopy|precopy|hybrid] [--downtime-limit MS] [--rounds N] [--auto-converge]
//               [--max-bandwidth BYTES/S] [--max-postcopy-bandwidth BYTES/S]
//   migrate_set_parameter downtime-limit MS | max-bandwidth BYTES/S | max-postcopy-bandwidth BYTES/S
//   info migrate | info migrate_parameters | info status | migrate_start_postcopy | cancel | quit
import { createInterface, type Interface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { PostcopyError } from '../errors.ts';
import { parseSize } from '../guest/memory-map.ts';
import { formatMigrationInfo } from './format-info.ts';
import type { MigrateRequest, Monitor, ParametersRequest } from './monitor.ts';

const HELP = `commands:
  migrate URL [--mode postcopy|precopy|hybrid] [--downtime-limit MS] [--rounds N] [--hybrid-rounds N]
              [--auto-converge] [--max-bandwidth BYTES/S] [--max-postcopy-bandwidth BYTES/S]
              (caps as 300M: precopy rounds, the postcopy push; 0: unlimited)
  migrate_set_parameter downtime-limit MS | max-bandwidth BYTES/S | max-postcopy-bandwidth BYTES/S
                      now, for the migration in progress, and for later ones
  info migrate        progress and figures of the current or last migration
  info migrate_parameters
  info status         the guest
  migrate_start_postcopy
  cancel              give up a migration before its switchover
  quit`;

export function startMonitorPrompt(monitor: Monitor, input: Readable, output: Writable): Interface {
  const rl = createInterface({ input, output, prompt: '(postcopy) ' });
  const say = (text: string): void => void output.write(`${text}\n`);
  rl.on('line', (line) => {
    try {
      run(monitor, line.trim().split(/\s+/).filter(Boolean), say);
    } catch (err) {
      if (!(err instanceof PostcopyError)) throw err;
      say(`error: ${err.message}`);
    }
    rl.prompt();
  });
  // Ctrl-D, or Ctrl-C (readline closes on it): quit, saying so only when a migration makes that wait.
  rl.on('close', () => {
    const what = monitor.quit();
    if (monitor.migrating) say(what);
  });
  rl.prompt();
  return rl;
}

function run(monitor: Monitor, words: string[], say: (text: string) => void): void {
  const [cmd, ...args] = words;
  switch (cmd) {
    case undefined:
      return;
    case 'migrate':
      monitor.migrate(parseMigrate(args));
      say('migration started; `info migrate` shows its progress');
      return;
    case 'info':
      if (args[0] === 'migrate') {
        const info = monitor.infoMigrate();
        say(info ? formatMigrationInfo(info) : 'no migration yet');
      } else if (args[0] === 'migrate_parameters') {
        const p = monitor.migrationParameters();
        const cap = (v: number): string => (v === 0 ? 'unlimited' : `${v} bytes/s`);
        say(`downtime-limit: ${p.downtimeLimitMs} ms\nmax-bandwidth: ${cap(p.maxBandwidth)}\nmax-postcopy-bandwidth: ${cap(p.maxPostcopyBandwidth)}`);
      } else if (args[0] === 'status') {
        say(JSON.stringify(monitor.infoGuest(), null, 2));
      } else {
        say('info what? `info migrate`, `info migrate_parameters` or `info status`');
      }
      return;
    case 'migrate_set_parameter':
      monitor.setParameters(parseParameter(args));
      return;
    case 'migrate_start_postcopy':
      monitor.startPostcopy();
      return;
    case 'cancel':
    case 'migrate_cancel':
      monitor.cancel();
      return;
    case 'quit':
    case 'q':
      say(monitor.quit());
      return;
    default:
      say(`unknown command "${cmd}"\n${HELP}`);
  }
}

function parseParameter([name, value, ...rest]: string[]): ParametersRequest {
  if (value === undefined || rest.length > 0) throw new PostcopyError('MONITOR_ERR_COMMAND', `migrate_set_parameter takes a name and a value\n${HELP}`);
  switch (name) {
    case 'downtime-limit':
      if (!/^\d+(\.\d+)?$/.test(value)) throw new PostcopyError('MONITOR_ERR_COMMAND', `migrate_set_parameter: downtime-limit is in milliseconds, e.g. 500 (got "${value}")`);
      return { downtimeLimitMs: Number(value) };
    case 'max-bandwidth':
      return { maxBandwidth: bandwidth('migrate_set_parameter: max-bandwidth', value) };
    case 'max-postcopy-bandwidth':
      return { maxPostcopyBandwidth: bandwidth('migrate_set_parameter: max-postcopy-bandwidth', value) };
    default:
      throw new PostcopyError('MONITOR_ERR_COMMAND', `migrate_set_parameter: no parameter "${name}"; downtime-limit, max-bandwidth or max-postcopy-bandwidth`);
  }
}

function parseMigrate(args: string[]): MigrateRequest {
  const [to, ...flags] = args;
  const req: MigrateRequest = { to: to ?? '' };
  for (let i = 0; i < flags.length; i += 2) {
    if (flags[i] === '--auto-converge') {
      req.autoConverge = true;
      i--;
      continue;
    }
    const value = flags[i + 1];
    const num = Number(value);
    switch (flags[i]) {
      case '--mode':
        req.mode = value as MigrateRequest['mode'];
        break;
      case '--downtime-limit':
        req.downtimeLimitMs = num;
        break;
      case '--rounds':
        req.maxRounds = num;
        break;
      case '--hybrid-rounds':
        req.hybridRounds = num;
        break;
      case '--max-bandwidth':
        req.maxBandwidth = bandwidth('migrate: --max-bandwidth', value ?? '');
        break;
      case '--max-postcopy-bandwidth':
        req.maxPostcopyBandwidth = bandwidth('migrate: --max-postcopy-bandwidth', value ?? '');
        break;
      default:
        throw new PostcopyError('MONITOR_ERR_COMMAND', `migrate: unknown flag "${flags[i]}"\n${HELP}`);
    }
  }
  return req;
}

/** A cap in bytes per second as the size parser reads it (300M), or an error naming `what`. */
function bandwidth(what: string, value: string): number {
  try {
    return parseSize(value);
  } catch (err) {
    throw new PostcopyError('MONITOR_ERR_COMMAND', `${what}: ${(err as Error).message}`);
  }
}
