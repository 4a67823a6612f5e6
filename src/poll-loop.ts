// A fault-path thread's own wait: poll(2) over its descriptors (the
// userfaultfd, the urgent socket), as QEMU's postcopy fault thread does,
// instead of libuv's epoll. A ready descriptor is served in the same wake-up,
// with no callback machinery between the kernel and the handler; that is
// most of what an event-loop hop cost on the fault path.
//
// The thread's libuv loop is one of the descriptors: when it has work (a
// message from the main thread, termination) the poll returns and the loop
// runs once before the next poll, so messages, timers and promises still work.
// But a due timer or a setImmediate does not wake a poll: work of the
// thread's own that must not wait out a sleep (the push's next frames, the
// end of its bandwidth wait) goes through later(), which the poll's timeout
// accounts for.
import type { Logger } from './log.ts';
import { emptyObjectArray } from './object-array.ts';
import { loadNative, type NativeAddon } from './uffd/native.ts';

/** A descriptor the loop watches and the code that serves it. */
export interface PollSource {
  readonly fd: number;
  /** POLLIN/POLLOUT wanted now; asked before every poll. */
  readonly pollEvents: number;
  /** Called with the returned events (POLLIN, POLLOUT, POLLERR, POLLHUP). */
  ready(revents: number): void;
}

// Timers in this thread run at least this often when nothing is ready. Polls
// chained for answers and next events (awaitAnswer(), awaitNextEvent()) sleep
// this long each: a timer waits for up to MAX_CHAINED_POLLS + 1 of them, if
// events keep coming just less often than this.
const MAX_SLEEP_MS = 100;

/** Polls that may follow one another before libuv's turn, each for an awaited answer or next event. */
export const MAX_CHAINED_POLLS = 16;

export interface PollLoopOptions {
  /**
   * awaitNextEvent() chains polls: for a thread that serves a migration,
   * whose work from one event to the next is all done in this loop. Any
   * JavaScript of the thread that waits for a promise, an immediate or a
   * timer between one event and the next waits for that poll instead: the
   * fault path rehearsal, whose next touch follows a promise, took 100 ms a
   * round trip chained, and its loop is not.
   */
  readonly chained?: boolean;
}

export class PollLoop {
  /**
   * Replaced on add and remove, never changed in place: a poll in progress
   * keeps indexing the array its descriptor set was built from, and nothing
   * is copied per poll.
   */
  private sources: readonly PollSource[] = emptyObjectArray<PollSource>();
  private readonly loopFd: number;
  private scheduled = false;
  private answerDue = false;
  private set = new Int32Array(0);
  /** Work for later(), in no order; ascending `due` would be a heap for the one or two a thread has. */
  private tasks = emptyObjectArray<{ readonly due: number; readonly run: () => void }>();

  private readonly chained: boolean;

  /** `native`: the addon, unless a test watches the timeouts poll is given. */
  constructor(
    private readonly log: Logger,
    private readonly native: Pick<NativeAddon, 'poll' | 'loopFd' | 'constants'> = loadNative(),
    options: PollLoopOptions = {},
  ) {
    this.loopFd = native.loopFd();
    this.chained = options.chained === true;
  }

  add(source: PollSource): void {
    if (!this.sources.includes(source)) this.sources = [...this.sources, source];
    this.schedule();
  }

  remove(source: PollSource): void {
    this.sources = this.sources.filter((s) => s !== source);
  }

  /** Runs `task` on this thread after `delayMs`, or after the next poll, which then does not sleep. */
  later(task: () => void, delayMs = 0): void {
    this.tasks.push({ due: performance.now() + delayMs, run: task });
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.iterate);
  }

  /**
   * A request just went out on one of this loop's descriptors: its answer is
   * polled for before libuv's turn. A fault's threads wake one another onto
   * one core, so a libuv turn between the request and the sleep was a turn
   * the thread answering it waited for. That poll sleeps as long as any
   * other (an answer takes tens of microseconds, and libuv's own descriptor
   * still wakes it): a shorter timeout arms a timer that is the core's
   * next, and reprogramming it costs a VM exit on each side of the sleep
   * (C, two threads ping-ponging over poll(2): 10.5 µs a round trip with a
   * 100 ms timeout, 11.6 with 1 ms). With 1 ms here, faults were 2-3 µs slower.
   * Promise callbacks, immediates and timers queued before this wait for
   * that poll: only for an answer no JavaScript on this thread must produce.
   * After a placement, awaitNextEvent() does the same on a chained loop only.
   */
  awaitAnswer(): void {
    this.answerDue = true;
  }

  /**
   * This thread just did its part of a fault (placed the page, answered the
   * request), and the next event comes from another thread or process. On a
   * chained loop (see PollLoopOptions) it is polled for before libuv's turn,
   * as an awaited answer is: the turn between a placement and the sleep was
   * 1.2 µs (bpftrace), which a vCPU woken onto the same core waited out, as
   * the fault thread did for the request thread's. Both chained, the
   * median fault was lower in 8 of 8 alternating pairs of traced demos, by
   * 3.5 µs at the median. Called on every loop alike, so that a rehearsal's
   * runs the very same code.
   */
  awaitNextEvent(): void {
    this.answerDue = this.answerDue || this.chained;
  }

  private readonly iterate = (): void => {
    this.scheduled = false;
    if (this.sources.length === 0 && this.tasks.length === 0) return;
    this.answerDue = false;
    let rc = this.pollOnce(this.sleepMs());
    // Not when libuv's own descriptor is ready: its work waits for no answer.
    for (let polls = 0; this.answerDue && rc > 0 && this.set[2] === 0 && polls < MAX_CHAINED_POLLS; polls++) {
      this.answerDue = false;
      rc = this.pollOnce(this.sleepMs());
    }
    // Always through the event loop, so its work (and this thread's termination) never waits for a fault.
    if (rc < 0 && rc !== -this.native.constants.EINTR) setTimeout(() => this.schedule(), MAX_SLEEP_MS);
    else this.schedule();
  };

  /** One poll and the work it finds; returns poll's result. */
  private pollOnce(timeoutMs: number): number {
    const sources = this.sources;
    const { POLLIN, EINTR } = this.native.constants;
    const length = (sources.length + 1) * 3;
    if (this.set.length !== length) this.set = new Int32Array(length);
    const set = this.set;
    set[0] = this.loopFd;
    set[1] = POLLIN;
    for (let i = 0; i < sources.length; i++) {
      set[(i + 1) * 3] = sources[i].fd;
      set[(i + 1) * 3 + 1] = sources[i].pollEvents;
    }
    const rc = this.native.poll(set, timeoutMs);
    if (rc < 0 && rc !== -EINTR) {
      // Only a bad descriptor set gets here; a source that closed its fd must remove itself first.
      this.log.error({ errno: -rc }, 'poll failed on the fault path; waiting on the event loop instead');
    }
    for (let i = 0; rc > 0 && i < sources.length; i++) {
      const revents = set[(i + 1) * 3 + 2];
      if (revents !== 0 && this.sources.includes(sources[i])) sources[i].ready(revents);
    }
    this.runDueTasks();
    return rc;
  }

  private sleepMs(): number {
    let ms = MAX_SLEEP_MS;
    // The fault path's threads have no tasks: no clock read for them, it was 0.2 µs of every wake-up.
    if (this.tasks.length === 0) return ms;
    const now = performance.now();
    for (const task of this.tasks) ms = Math.min(ms, Math.max(0, Math.ceil(task.due - now)));
    return ms;
  }

  private runDueTasks(): void {
    if (this.tasks.length === 0) return;
    const now = performance.now();
    const due = this.tasks.filter((task) => task.due <= now);
    if (due.length === 0) return;
    this.tasks = this.tasks.filter((task) => task.due > now);
    for (const task of due) task.run();
  }
}
