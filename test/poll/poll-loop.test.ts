// A page thread's poll loop (poll-loop.ts) sleeps in poll(2), where neither
// a due timer nor a setImmediate wakes it: work of the thread's own goes
// through later(), which must keep the poll from sleeping past it. After a
// request goes out, its answer is polled for before libuv's turn, with the
// loop's usual timeout; on a chained loop, so is the next event after a
// thread's part of a fault, for a bounded number of polls.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_CHAINED_POLLS, PollLoop, type PollSource } from '../../src/poll-loop.ts';
import { loadNative, nativeAvailable } from '../../src/uffd/native.ts';
import { memoryLog } from '../protocol/log-sink.ts';

describe.skipIf(!nativeAvailable())('the poll loop', () => {
  const { log } = memoryLog('warn');
  const native = nativeAvailable() ? loadNative() : undefined;
  const cleanup: (() => void)[] = [];

  afterEach(() => {
    for (const c of cleanup.splice(0)) c();
  });

  /** A descriptor that never becomes ready: one end of a socket pair nobody writes to. */
  function quietSource(loop: PollLoop): void {
    const [a, b] = native!.socketPair();
    const source: PollSource = { fd: a, pollEvents: native!.constants.POLLIN, ready: () => undefined };
    loop.add(source);
    cleanup.push(() => {
      loop.remove(source);
      native!.close(a);
      native!.close(b);
    });
  }

  /** A loop whose every poll timeout is recorded. */
  function watchedLoop(): { loop: PollLoop; timeouts: number[] } {
    const timeouts: number[] = [];
    const poll = (set: Int32Array, timeoutMs: number): number => {
      timeouts.push(timeoutMs);
      return native!.poll(set, timeoutMs);
    };
    const loop = new PollLoop(log, { poll, loopFd: () => native!.loopFd(), constants: native!.constants });
    return { loop, timeouts };
  }

  it('polls without sleeping while a task is due, and runs it', async () => {
    const { loop, timeouts } = watchedLoop();
    quietSource(loop);
    await new Promise<void>((resolve) => loop.later(resolve));
    expect(timeouts.at(-1)).toBe(0);
  });

  it('runs a delayed task no earlier than asked, sleeping no longer than until then', async () => {
    const { loop, timeouts } = watchedLoop();
    quietSource(loop);
    const asked = performance.now();
    const ran = await new Promise<number>((resolve) => loop.later(() => resolve(performance.now()), 30));
    expect(ran - asked).toBeGreaterThanOrEqual(30);
    expect(Math.max(...timeouts)).toBeLessThanOrEqual(30);
  });

  it('runs tasks even with no descriptor to watch', async () => {
    const loop = new PollLoop(log);
    let ran = 0;
    await new Promise<void>((resolve) => {
      loop.later(() => ran++);
      loop.later(() => {
        ran++;
        resolve();
      }, 5);
    });
    expect(ran).toBe(2);
  });

  /**
   * A loop over one end of a socket pair whose every poll (with its timeout)
   * and every wake-up of the source is recorded in `events`, and a poll that
   * found libuv's own descriptor ready as 'libuv ready'; `onReady` runs on
   * each wake-up after its byte is read.
   */
  function requestingLoop(onReady: (loop: PollLoop, peer: number, wakeUps: number) => void, chained: boolean): { events: string[]; peer: number } {
    const events: string[] = [];
    const poll = (set: Int32Array, timeoutMs: number): number => {
      events.push(`poll ${timeoutMs}`);
      const rc = native!.poll(set, timeoutMs);
      if (rc > 0 && set[2] !== 0) events.push('libuv ready');
      return rc;
    };
    const loop = new PollLoop(log, { poll, loopFd: () => native!.loopFd(), constants: native!.constants }, { chained });
    const [a, b] = native!.socketPair();
    const byte = Buffer.alloc(1);
    let wakeUps = 0;
    const source: PollSource = {
      fd: a,
      pollEvents: native!.constants.POLLIN,
      ready: () => {
        native!.readBytes(a, byte, 0, 1);
        events.push('ready');
        onReady(loop, b, ++wakeUps);
      },
    };
    loop.add(source);
    cleanup.push(() => {
      loop.remove(source);
      native!.close(a);
      native!.close(b);
    });
    return { events, peer: b };
  }

  /**
   * What a fresh requestingLoop does, `bytes` written to it, up to the libuv
   * turn its first wake-up queues (setImmediate) along with `onReady`. A poll
   * that finds libuv's own descriptor ready ends any chain, by design, and the
   * test runner's own I/O can make it so: such a run is tried again, 5 times
   * at most.
   */
  async function untilLibuvTurn(
    bytes: number,
    onReady: (loop: PollLoop, peer: number, wakeUps: number) => void,
    chained = false,
  ): Promise<string[]> {
    let events: string[] = [];
    for (let attempt = 0; attempt < 5; attempt++) {
      let turn: Promise<void> | undefined;
      const run = requestingLoop((loop, b, wakeUps) => {
        onReady(loop, b, wakeUps);
        if (wakeUps === 1) {
          turn = new Promise((resolve) =>
            setImmediate(() => {
              run.events.push('libuv turn');
              resolve();
            }),
          );
        }
      }, chained);
      native!.writev(run.peer, Buffer.alloc(bytes, 1));
      await vi.waitFor(() => expect(turn).toBeDefined());
      await turn;
      events = run.events.slice(0, run.events.indexOf('libuv turn') + 1);
      if (!events.includes('libuv ready')) return events;
    }
    return events;
  }

  it.each([
    { answer: 'comes in time', events: ['poll 100', 'ready', 'poll 100', 'ready', 'libuv turn'] },
    { answer: 'never comes', events: ['poll 100', 'ready', 'poll 100', 'libuv turn'] },
  ])('polls once more before libuv gets its turn when an awaited answer $answer', async ({ answer, events: expected }) => {
    const events = await untilLibuvTurn(1, (loop, b, wakeUps) => {
      if (wakeUps !== 1) return;
      loop.awaitAnswer();
      if (answer === 'comes in time') native!.writev(b, Buffer.from([2]));
    });
    expect(events).toEqual(expected);
  });

  it.each([
    { loop: 'a chained loop', chained: true, events: ['poll 100', 'ready', 'poll 100', 'ready', 'libuv turn'] },
    { loop: 'a loop not chained', chained: false, events: ['poll 100', 'ready', 'libuv turn'] },
  ])('after a thread does its part of a fault, $loop polls for the next event before libuv gets its turn', async ({ chained, events: expected }) => {
    const events = await untilLibuvTurn(
      1,
      (loop, b, wakeUps) => {
        if (wakeUps !== 1) return;
        loop.awaitNextEvent();
        native!.writev(b, Buffer.from([2]));
      },
      chained,
    );
    expect(events).toEqual(expected);
  });

  it('gives libuv its turn after MAX_CHAINED_POLLS chained polls, however many events keep coming', async () => {
    const events = await untilLibuvTurn(3 * MAX_CHAINED_POLLS, (loop) => loop.awaitNextEvent(), true);
    const polls = Array.from({ length: MAX_CHAINED_POLLS + 1 }, () => ['poll 100', 'ready']).flat();
    expect(events).toEqual([...polls, 'libuv turn']);
  });
});
