// The source's monitor: the commands a user (prompt) or a program (the JSON
// control endpoint, `postcopy migrate`, `postcopy demo`) gives the running
// guest, named after QEMU's HMP/QMP ones. One migration at a time.
import { EventEmitter } from 'node:events';
import type { Machine } from '../guest/machine.ts';
import type { Logger } from '../log.ts';
import { MigrationCancelledError, MonitorCommandError } from './errors.ts';
import { MIGRATION_MODES, type MigrationInfo, type MigrationMode } from './migration-info.ts';
import { OutgoingMigration } from './outgoing-migration.ts';
import { rehearseHandshake } from '../protocol/handshake-rehearsal.ts';
import { PushThread, RequestThread } from './page-thread.ts';

export interface MigrateRequest {
  /** ws://host:port of the destination. */
  to: string;
  mode?: MigrationMode;
  downtimeLimitMs?: number;
  maxRounds?: number;
  hybridRounds?: number;
  /** Bytes per second for the postcopy push (QEMU's max-postcopy-bandwidth); 0 or unset: unlimited. */
  maxPostcopyBandwidth?: number;
  /** Bytes per second for precopy rounds while the guest runs (QEMU's max-bandwidth); 0 or unset: unlimited. */
  maxBandwidth?: number;
  /** Start once every vCPU has run this many instructions (deterministic switchover point). */
  afterInstructions?: number;
  /** QEMU's auto-converge capability: slow the vCPUs while precopy does not converge. */
  autoConverge?: boolean;
}

/** `migrate_set_parameter` (QEMU's migrate-set-parameters): each key optional, at least one. */
export interface ParametersRequest {
  downtimeLimitMs?: number;
  /** 0 lifts the cap. */
  maxBandwidth?: number;
  /** 0 lifts the cap. */
  maxPostcopyBandwidth?: number;
}

/** info migrate_parameters: every parameter's value, 0 for no cap. */
export type MigrationParameterValues = Required<ParametersRequest>;

export interface GuestInfo {
  vcpus: number;
  ramSize: number;
  imageSha256: string;
  /** Where the guest runs: here, or (after a completed migration) on the destination. */
  runningHere: boolean;
  /** Auto-converge's slowing of the vCPUs here, in percent; 0 outside a precopy. */
  cpuThrottlePercentage: number;
  exitCode: number | null;
  consoleBytes: number;
}

export interface MonitorOptions {
  readonly machine: Machine;
  readonly token: string;
  /** The instruction count the guest stops at (Infinity: none). */
  readonly stopAt: number;
  readonly disk?: string;
  readonly log: Logger;
}

export const MIGRATE_DEFAULTS = { mode: 'postcopy', downtimeLimitMs: 300, maxRounds: 30, hybridRounds: 2 } as const;

export class Monitor extends EventEmitter<{ completed: [MigrationInfo]; quit: [] }> {
  private migration: OutgoingMigration | undefined;
  /** Started ahead of the migration that will use it up: its modules take a while to load. */
  private requests: RequestThread | undefined;
  private pushes: PushThread | undefined;
  /** The main thread's own part of a migration's start (connectMigration), warmed while the source waits. */
  private readonly handshakeRehearsal: Promise<number>;
  private last: MigrationInfo | undefined;
  private migratedAway = false;
  private endWaiters: ((info: MigrationInfo) => void)[] = [];
  /** Set by migrate_set_parameter: what a later `migrate` uses unless it says otherwise. */
  private parameters: ParametersRequest = {};

  constructor(private readonly options: MonitorOptions) {
    super();
    this.requests = new RequestThread(options.log, options.machine.ram.handle);
    this.pushes = new PushThread(options.log, options.machine.ram.handle);
    this.handshakeRehearsal = rehearseHandshake(options.log);
  }

  /**
   * Resolves once the push and the request thread have rehearsed (or a
   * migration cut them short): a migration started earlier runs its first
   * pages through code still being compiled, on the cores the push needs.
   */
  async ready(): Promise<void> {
    await Promise.all([this.requests?.rehearsed(), this.pushes?.rehearsed(), this.handshakeRehearsal]);
  }

  /** `migrate URL`: starts a migration in the background; its progress is `info migrate`. */
  migrate(request: MigrateRequest): void {
    if (this.migration) throw new MonitorCommandError('a migration is already in progress; wait for it, or `cancel` it first');
    if (this.migratedAway) throw new MonitorCommandError('the guest already migrated away; nothing is left to migrate');
    const req = checkMigrateRequest({ ...this.parameters, ...request });
    const { machine, log } = this.options;
    const requests = this.requests ?? new RequestThread(log, machine.ram.handle);
    const pushes = this.pushes ?? new PushThread(log, machine.ram.handle);
    this.requests = undefined;
    this.pushes = undefined;
    const migration = new OutgoingMigration({
      machine,
      url: req.to,
      token: this.options.token,
      mode: req.mode,
      downtimeLimitMs: req.downtimeLimitMs,
      maxRounds: req.maxRounds,
      hybridRounds: req.hybridRounds,
      autoConverge: req.autoConverge,
      maxBandwidth: req.maxBandwidth,
      maxPostcopyBandwidth: req.maxPostcopyBandwidth,
      disk: this.options.disk,
      requests,
      pushes,
      log,
    });
    this.migration = migration;
    void this.drive(migration, req.afterInstructions).finally(() => {
      this.last = migration.info();
      this.migration = undefined;
      if (!this.migratedAway) {
        this.requests = new RequestThread(log, machine.ram.handle);
        this.pushes = new PushThread(log, machine.ram.handle);
      }
      for (const w of this.endWaiters.splice(0)) w(this.last);
      if (this.migratedAway) this.emit('completed', this.last);
    });
  }

  get migrating(): boolean {
    return this.migration !== undefined;
  }

  /** Resolves with the figures once the current (or next) migration ends, however it ends. */
  whenMigrationEnds(): Promise<MigrationInfo> {
    if (!this.migration && this.last) return Promise.resolve(this.last);
    return new Promise((resolve) => this.endWaiters.push(resolve));
  }

  /** `info migrate`: the running or the last migration, or null. */
  infoMigrate(): MigrationInfo | null {
    return this.migration?.info() ?? this.last ?? null;
  }

  infoGuest(): GuestInfo {
    const m = this.options.machine;
    return {
      vcpus: m.vcpus,
      ramSize: m.ramSize,
      imageSha256: m.imageHash,
      runningHere: !this.migratedAway,
      cpuThrottlePercentage: m.throttle,
      exitCode: m.exit ? m.exit.code : null,
      consoleBytes: m.consoleOffset,
    };
  }

  /** `migrate_start_postcopy`. */
  startPostcopy(): void {
    if (!this.migration) throw new MonitorCommandError('no migration is in progress; start one with `migrate URL --mode hybrid` or `--mode precopy`');
    this.migration.startPostcopy();
  }

  /**
   * `migrate_set_parameter`: changes the migration in progress (a precopy
   * that does not converge may get a longer downtime limit; a push may be
   * capped or freed) and is what later migrations start with, as in QEMU.
   */
  setParameters(request: ParametersRequest): void {
    const p = checkParameters(request);
    this.parameters = { ...this.parameters, ...p };
    // 0 lifts a cap: undefined, present, says so to the migration.
    const cap = (v: number | undefined, key: 'maxBandwidth' | 'maxPostcopyBandwidth') => (v === undefined ? {} : { [key]: v === 0 ? undefined : v });
    this.migration?.setParameters({
      ...(p.downtimeLimitMs !== undefined ? { downtimeLimitMs: p.downtimeLimitMs } : {}),
      ...cap(p.maxBandwidth, 'maxBandwidth'),
      ...cap(p.maxPostcopyBandwidth, 'maxPostcopyBandwidth'),
    });
  }

  /** `info migrate_parameters`: those of the migration in progress, else what the next one starts with. */
  migrationParameters(): MigrationParameterValues {
    const running = this.migration?.info();
    if (running) return { downtimeLimitMs: running.downtimeLimitMs, maxBandwidth: running.maxBandwidth, maxPostcopyBandwidth: running.maxPostcopyBandwidth };
    const p = this.parameters;
    return { downtimeLimitMs: p.downtimeLimitMs ?? MIGRATE_DEFAULTS.downtimeLimitMs, maxBandwidth: p.maxBandwidth ?? 0, maxPostcopyBandwidth: p.maxPostcopyBandwidth ?? 0 };
  }

  /** `migrate_cancel`: only before the switchover. */
  cancel(): void {
    if (!this.migration) throw new MonitorCommandError('no migration is in progress');
    if (!this.migration.cancel()) {
      throw new MonitorCommandError(`cannot cancel while ${this.migration.state.state}: the guest already runs on the destination; only finishing is left`);
    }
  }

  /**
   * `quit`; returns what it does, for the prompt and the endpoint. A
   * migration in progress is cancelled first, so that the destination hears
   * why. Past the switchover only part of the guest's memory has left: the
   * source then quits when the migration ends, as it would anyway, rather
   * than lose the guest (closing at once also unmapped RAM under the page
   * threads, and the source died of SIGSEGV).
   */
  quit(): string {
    const migration = this.migration;
    if (!migration) {
      this.emit('quit');
      return 'quitting';
    }
    void this.whenMigrationEnds().then(() => {
      // A migration that took the guest away ends the source itself, with 'completed'.
      if (!this.migratedAway) this.emit('quit');
    });
    if (migration.cancel('the source was told to quit')) return 'cancelling the migration, then quitting';
    return `quitting once the migration ends: the guest runs on the destination, which still fetches pages from here (${migration.state.state})`;
  }

  private async drive(migration: OutgoingMigration, afterInstructions: number | undefined): Promise<void> {
    const { machine, stopAt, log } = this.options;
    try {
      if (afterInstructions !== undefined) {
        await machine.runUntil(Math.min(afterInstructions, stopAt));
        // Precopy copies a running guest; postcopy stops it at once anyway.
        if (migration.info().mode !== 'postcopy') machine.setStopAt(stopAt);
      }
      await migration.run();
      this.migratedAway = true;
      await machine.close();
    } catch (err) {
      const cancelled = err instanceof MigrationCancelledError;
      log[cancelled ? 'warn' : 'error']({ err }, cancelled ? 'migration cancelled; the guest keeps running here' : 'migration failed');
      if (migration.handedOver) {
        // The guest may already run on the destination: running it here too would fork it.
        this.migratedAway = true;
        log.error('the guest stays stopped here: the destination took it over before the migration broke');
      } else {
        resumeHere(machine, stopAt);
      }
    }
  }
}

// The guest must never be left stopped on the source when the destination
// never started it: that would lose it.
function resumeHere(machine: Machine, stopAt: number): void {
  machine.setStopAt(stopAt);
  machine.resume();
}

function checkMigrateRequest(
  r: MigrateRequest,
): Required<Omit<MigrateRequest, 'afterInstructions' | 'maxBandwidth' | 'maxPostcopyBandwidth'>> & Pick<MigrateRequest, 'afterInstructions' | 'maxBandwidth' | 'maxPostcopyBandwidth'> {
  if (typeof r !== 'object' || r === null) throw new MonitorCommandError('migrate needs {"to": "ws://HOST:PORT", ...}');
  if (typeof r.to !== 'string' || !/^wss?:\/\/[^/\s]+\/?$/.test(r.to)) {
    throw new MonitorCommandError(`migrate: "to" must be the destination's ws://HOST:PORT (got ${JSON.stringify(r.to)})`);
  }
  const mode = r.mode ?? MIGRATE_DEFAULTS.mode;
  if (!MIGRATION_MODES.includes(mode)) throw new MonitorCommandError(`migrate: mode must be one of ${MIGRATION_MODES.join(', ')} (got ${JSON.stringify(mode)})`);
  const positive = (name: string, v: unknown, dflt: number, integer: boolean): number => (v === undefined ? dflt : positiveValue('migrate', name, v, integer));
  const flag = (name: string, v: unknown): boolean => {
    if (v === undefined || typeof v === 'boolean') return v === true;
    throw new MonitorCommandError(`migrate: ${name} must be true or false (got ${JSON.stringify(v)})`);
  };
  return {
    to: r.to,
    mode,
    downtimeLimitMs: positive('downtimeLimitMs', r.downtimeLimitMs, MIGRATE_DEFAULTS.downtimeLimitMs, false),
    maxRounds: positive('maxRounds', r.maxRounds, MIGRATE_DEFAULTS.maxRounds, true),
    hybridRounds: positive('hybridRounds', r.hybridRounds, MIGRATE_DEFAULTS.hybridRounds, true),
    autoConverge: flag('autoConverge', r.autoConverge),
    afterInstructions: r.afterInstructions === undefined ? undefined : positive('afterInstructions', r.afterInstructions, 0, true),
    // As QEMU's parameters: 0 lifts the cap.
    maxBandwidth: r.maxBandwidth === 0 || r.maxBandwidth === undefined ? undefined : positive('maxBandwidth', r.maxBandwidth, 0, true),
    maxPostcopyBandwidth: r.maxPostcopyBandwidth === 0 || r.maxPostcopyBandwidth === undefined ? undefined : positive('maxPostcopyBandwidth', r.maxPostcopyBandwidth, 0, true),
  };
}

function positiveValue(command: string, name: string, v: unknown, integer: boolean): number {
  if (typeof v !== 'number' || !(v > 0) || (integer && !Number.isSafeInteger(v))) {
    throw new MonitorCommandError(`${command}: ${name} must be a positive ${integer ? 'integer' : 'number'} (got ${JSON.stringify(v)})`);
  }
  return v;
}

const PARAMETER_NAMES = ['downtimeLimitMs', 'maxBandwidth', 'maxPostcopyBandwidth'] as const;

function checkParameters(r: ParametersRequest): ParametersRequest {
  const usage = `migrate_set_parameter needs one or more of ${PARAMETER_NAMES.join(', ')}`;
  if (typeof r !== 'object' || r === null) throw new MonitorCommandError(usage);
  const keys = Object.keys(r);
  const unknown = keys.find((k) => !(PARAMETER_NAMES as readonly string[]).includes(k));
  if (unknown !== undefined) throw new MonitorCommandError(`migrate_set_parameter: no parameter "${unknown}"; ${usage}`);
  if (keys.length === 0) throw new MonitorCommandError(usage);
  const out: ParametersRequest = {};
  if (r.downtimeLimitMs !== undefined) out.downtimeLimitMs = positiveValue('migrate_set_parameter', 'downtimeLimitMs', r.downtimeLimitMs, false);
  // As QEMU's parameters: 0 lifts a cap.
  for (const key of ['maxBandwidth', 'maxPostcopyBandwidth'] as const) {
    const v = r[key];
    if (v !== undefined) out[key] = v === 0 ? 0 : positiveValue('migrate_set_parameter', key, v, true);
  }
  return out;
}
