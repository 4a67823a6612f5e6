// The destination rehearses accepting a migration before one arrives, as the
// source rehearses its push (source/push-rehearsal.ts) and the page threads
// the fault path (fault-path-rehearsal.ts). Cold, the first WebSocket upgrade
// a destination served took 17-28 ms from the source's connect to the
// listener's 'connection' (Node's HTTP server, ws's upgrade, the handshake
// codecs, all compiled on first use), against 2-3 ms for the two channels
// right behind it; and a migration's setup waits for all three.
//
// A throwaway MigrationListener on an ephemeral loopback port, with its own
// state and token, takes the three channels of a throwaway migration through
// the real connectMigration: hello, identity checks, welcome. Nothing of it
// reaches the destination's own listener or state.
import type { Logger } from '../log.ts';
import { PAGE_SIZE } from '../uffd/pages.ts';
import { generateSessionId, generateToken } from './auth.ts';
import { connectMigration } from './connect.ts';
import type { ChannelSet } from './listener.ts';
import { MigrationListener } from './listener.ts';
import type { MachineIdentity } from './messages.ts';
import { MigrationStateMachine } from './state.ts';

export const HANDSHAKE_REHEARSAL_ROUNDS = 3;
// A loopback handshake takes milliseconds; past this something is wrong, and the rehearsal gives up.
const ROUND_TIMEOUT_MS = 2_000;

const REHEARSAL_IDENTITY: MachineIdentity = {
  pageSize: PAGE_SIZE,
  ramBase: 0x8000_0000,
  ramSize: 1 << 20,
  vcpus: 1,
  imageSha256: '0'.repeat(64),
};

/** Closes the source's side and resolves once both sides saw every close. */
function closeAll(client: ChannelSet, server: ChannelSet): Promise<void> {
  const all = [client.control, client.bulk, client.urgent, server.control, server.bulk, server.urgent];
  const closed = all.map((channel) => new Promise<void>((resolve) => channel.onClose(() => resolve())));
  for (const channel of all.slice(0, 3)) channel.close(1000, 'rehearsal over');
  return Promise.all(closed).then(() => undefined);
}

/** Resolves with the rounds completed; never rejects (a failed rehearsal only leaves the first handshake cold). */
export async function rehearseHandshake(log: Logger, rounds = HANDSHAKE_REHEARSAL_ROUNDS): Promise<number> {
  const rlog = log.child({ rehearsal: 'handshake' });
  let done = 0;
  for (let i = 0; i < rounds; i++) {
    // A listener takes one migration, so each round has its own, as each destination does.
    const token = generateToken();
    const state = new MigrationStateMachine();
    let listener: MigrationListener | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      listener = await MigrationListener.listen({ host: '127.0.0.1', port: 0, token, pageSize: REHEARSAL_IDENTITY.pageSize, state, log: rlog });
      const accepted = new Promise<ChannelSet>((resolve) => listener!.onMigration((m) => resolve(m.channels)));
      const connected = connectMigration({
        url: `ws://127.0.0.1:${listener.port}`,
        token,
        session: generateSessionId(),
        identity: REHEARSAL_IDENTITY,
        state: new MigrationStateMachine(),
        log: rlog,
      });
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no handshake within ${ROUND_TIMEOUT_MS} ms`)), ROUND_TIMEOUT_MS);
      });
      const [server, client] = await Promise.race([Promise.all([accepted, connected]), timeout]);
      await Promise.race([closeAll(client, server), timeout]);
      done++;
    } catch (err) {
      rlog.debug({ err }, 'the handshake rehearsal failed; the first migration will find it cold');
      break;
    } finally {
      clearTimeout(timer);
      await listener?.close();
    }
  }
  return done;
}
