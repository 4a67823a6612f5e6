// The source's JSON control endpoint over HTTP, for `postcopy migrate`, the
// demo and dashboards: the monitor's commands as routes, token-authenticated.
//
//   GET  /info                    guest and migration
//   GET  /migrate                 info migrate (query-migrate); ?wait=end answers once it has ended
//   POST /migrate                 {to, mode, downtimeLimitMs, maxRounds, hybridRounds, autoConverge, maxBandwidth, maxPostcopyBandwidth, afterInstructions}
//   GET  /migrate/parameters      info migrate_parameters: {downtimeLimitMs, maxBandwidth, maxPostcopyBandwidth}
//   POST /migrate/parameters      migrate_set_parameter: any of them (0: no cap)
//   POST /migrate/start-postcopy  migrate_start_postcopy
//   POST /migrate/cancel          migrate_cancel
//   POST /quit
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ListenError, PostcopyError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { tokensEqual } from '../protocol/auth.ts';
import type { MigrateRequest, Monitor, ParametersRequest } from './monitor.ts';

const MAX_BODY_BYTES = 64 * 1024;

export class ControlEndpoint {
  private constructor(private readonly server: Server) {}

  static listen(monitor: Monitor, options: { host: string; port: number; token: string; log: Logger }): Promise<ControlEndpoint> {
    const server = createServer((req, res) => {
      handle(monitor, options.token, req, res).catch((err: Error) => {
        options.log.error({ err }, 'control endpoint request failed');
        reply(res, 500, { error: { code: 'MONITOR_ERR_INTERNAL', message: err.message } });
      });
    });
    return new Promise((resolve, reject) => {
      server.once('error', (err) => reject(new ListenError("the source's control endpoint", options.host, options.port, err)));
      server.listen(options.port, options.host, () => resolve(new ControlEndpoint(server)));
    });
  }

  get url(): string {
    const a = this.server.address() as AddressInfo;
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /** Stops accepting; requests in flight (a client waiting for the end of a migration) still get their answer. */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    return closed;
  }
}

async function handle(monitor: Monitor, token: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const auth = req.headers.authorization ?? '';
  if (!auth.startsWith('Bearer ') || !tokensEqual(auth.slice(7), token)) {
    reply(res, 401, { error: { code: 'MONITOR_ERR_AUTH', message: 'missing or wrong token: send "Authorization: Bearer TOKEN" with the token the source was started with' } });
    return;
  }
  const url = new URL(req.url ?? '/', 'http://x');
  const route = `${req.method} ${url.pathname}`;
  try {
    switch (route) {
      case 'GET /info':
        reply(res, 200, { guest: monitor.infoGuest(), migration: monitor.infoMigrate() });
        return;
      case 'GET /migrate':
        reply(res, 200, url.searchParams.get('wait') === 'end' ? await monitor.whenMigrationEnds() : monitor.infoMigrate());
        return;
      case 'POST /migrate':
        monitor.migrate((await readJson(req)) as MigrateRequest);
        reply(res, 202, monitor.infoMigrate());
        return;
      case 'GET /migrate/parameters':
        reply(res, 200, monitor.migrationParameters());
        return;
      case 'POST /migrate/parameters':
        monitor.setParameters((await readJson(req)) as ParametersRequest);
        reply(res, 200, monitor.migrationParameters());
        return;
      case 'POST /migrate/start-postcopy':
        monitor.startPostcopy();
        reply(res, 200, monitor.infoMigrate());
        return;
      case 'POST /migrate/cancel':
        monitor.cancel();
        reply(res, 200, monitor.infoMigrate());
        return;
      case 'POST /quit':
        reply(res, 200, { ok: true, message: monitor.quit() });
        return;
      default:
        reply(res, 404, { error: { code: 'MONITOR_ERR_ROUTE', message: `no route ${route}; see GET /info, GET|POST /migrate, GET|POST /migrate/parameters, POST /migrate/start-postcopy, POST /migrate/cancel, POST /quit` } });
    }
  } catch (err) {
    if (!(err instanceof PostcopyError)) throw err;
    reply(res, 400, { error: { code: err.code, message: err.message } });
  }
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new BadRequestError(`request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new BadRequestError(`request body is not JSON: ${(err as Error).message}`);
  }
}

class BadRequestError extends PostcopyError {
  constructor(message: string) {
    super('MONITOR_ERR_REQUEST', message);
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
