// A client for the source's JSON control endpoint (source/control-endpoint.ts).
import { PostcopyError } from '../errors.ts';
import type { MigrateRequest } from '../source/monitor.ts';
import type { MigrationInfo } from '../source/migration-info.ts';

export class ControlClient {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
  ) {}

  migrate(request: MigrateRequest): Promise<MigrationInfo> {
    return this.call('POST', '/migrate', request) as Promise<MigrationInfo>;
  }

  infoMigrate(): Promise<MigrationInfo | null> {
    return this.call('GET', '/migrate') as Promise<MigrationInfo | null>;
  }

  /** Answers once the migration has ended, with its final figures (the source may exit right after). */
  migrationEnd(): Promise<MigrationInfo> {
    return this.call('GET', '/migrate?wait=end') as Promise<MigrationInfo>;
  }

  startPostcopy(): Promise<unknown> {
    return this.call('POST', '/migrate/start-postcopy');
  }

  quit(): Promise<unknown> {
    return this.call('POST', '/quit');
  }

  private async call(method: string, path: string, body?: unknown): Promise<unknown> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.baseUrl), {
        method,
        headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new PostcopyError('CLI_ERR_CONTROL', `cannot reach the source's control endpoint at ${this.baseUrl}: ${(err as Error).cause ?? (err as Error).message}; is \`postcopy source\` running there?`, { cause: err });
    }
    const json = (await res.json()) as { error?: { code: string; message: string } };
    if (!res.ok) throw new PostcopyError(json.error?.code ?? 'CLI_ERR_CONTROL', json.error?.message ?? `HTTP ${res.status}`);
    return json;
  }
}
