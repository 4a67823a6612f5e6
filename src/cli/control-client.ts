// A client for the source's JSON control endpoint (source/control-endpoint.ts).
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { PostcopyError } from '../errors.ts';
import type { MigrateRequest, MigrationParameterValues, ParametersRequest } from '../source/monitor.ts';
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

  /** migrate_set_parameter; answers with the parameters now in force. */
  setParameters(request: ParametersRequest): Promise<MigrationParameterValues> {
    return this.call('POST', '/migrate/parameters', request) as Promise<MigrationParameterValues>;
  }

  /** migrate_cancel: only before the switchover. */
  cancel(): Promise<unknown> {
    return this.call('POST', '/migrate/cancel');
  }

  startPostcopy(): Promise<unknown> {
    return this.call('POST', '/migrate/start-postcopy');
  }

  quit(): Promise<unknown> {
    return this.call('POST', '/quit');
  }

  // node:http rather than fetch: fetch refuses the ports browsers block
  // (6000, 5060, 10080, ...), so a source listening on one was reported
  // unreachable, and it gives up on a response after 300 s, which a
  // migrationEnd() long poll outlasts on any long migration.
  private call(method: string, path: string, body?: unknown): Promise<unknown> {
    const url = new URL(path, this.baseUrl);
    const unreachable = (reason: string, cause?: unknown): PostcopyError =>
      new PostcopyError('CLI_ERR_CONTROL', `cannot reach the source's control endpoint at ${this.baseUrl}: ${reason}; is \`postcopy source\` running there?`, { cause });
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      return Promise.reject(
        new PostcopyError('CLI_ERR_CONTROL', `the source's control endpoint must be an http:// or https:// URL, got ${this.baseUrl} (e.g. http://127.0.0.1:4444)`),
      );
    }
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string | number> = { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' };
    if (payload !== undefined) headers['content-length'] = Buffer.byteLength(payload);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(url, { method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (err) => reject(unreachable(err.message, err)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: { error?: { code: string; message: string } } | null;
          try {
            json = JSON.parse(text) as typeof json;
          } catch {
            reject(
              new PostcopyError(
                'CLI_ERR_CONTROL',
                `${this.baseUrl} answered HTTP ${res.statusCode} with something that is not JSON (${JSON.stringify(text.slice(0, 80))}); is it a postcopy source's control endpoint?`,
              ),
            );
            return;
          }
          const status = res.statusCode ?? 0;
          if (status < 200 || status > 299) reject(new PostcopyError(json?.error?.code ?? 'CLI_ERR_CONTROL', json?.error?.message ?? `HTTP ${status}`));
          else resolve(json);
        });
      });
      req.on('error', (err) => reject(unreachable(err.message, err)));
      req.end(payload);
    });
  }
}
