// Starting worker threads whose code is TypeScript (see worker-bootstrap.mjs).
import { Worker, workerData as rawWorkerData, type WorkerOptions } from 'node:worker_threads';
import { PostcopyError } from './errors.ts';

const bootstrap = new URL('./worker-bootstrap.mjs', import.meta.url);

/**
 * Start `entry` (a .ts module URL) in a worker thread; it reads `data` with
 * workerPayload(). A `name` also names the kernel thread ("pc:NAME").
 */
export function startWorker(entry: URL, data: unknown, options: Omit<WorkerOptions, 'workerData'> = {}): Worker {
  return new Worker(bootstrap, { ...options, workerData: { entry: entry.href, data, name: options.name } });
}

/** Inside a worker started by startWorker: the `data` it was given. */
export function workerPayload<T>(): T {
  return (rawWorkerData as { data: T }).data;
}

/** Resolves at the worker's first message of type `type`, or when it exits without one. */
export function firstMessage(worker: Worker, type: string): Promise<void> {
  return new Promise((resolve) => {
    const onMessage = (m: { type?: unknown }): void => {
      if (m.type !== type) return;
      worker.off('message', onMessage);
      resolve();
    };
    worker.on('message', onMessage);
    worker.once('exit', () => resolve());
  });
}

/**
 * The first message of a worker that answers once and exits, resolved after its
 * exit. A worker whose parent is busy when it ends has its message delivered
 * inside the 'exit' dispatch, in the same tick: awaiting the message and only
 * then listening for 'exit' misses the exit and waits forever.
 */
export function workerResult<T>(worker: Worker): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let answer: { readonly value: T } | undefined;
    let failure: unknown;
    worker.once('message', (value: T) => (answer = { value }));
    worker.once('error', (err) => (failure = err));
    worker.once('exit', (code) => {
      if (failure !== undefined) reject(failure);
      else if (answer) resolve(answer.value);
      else reject(new PostcopyError('WORKER_ERR_NO_ANSWER', `a worker thread exited with code ${code} without answering`));
    });
  });
}
