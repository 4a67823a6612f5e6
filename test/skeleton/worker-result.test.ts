// workerResult(): a worker's one answer, however late its parent gets to it.
import { describe, expect, it } from 'vitest';
import { startWorker, workerResult } from '../../src/worker.ts';

const fixture = new URL('./fixtures/one-answer.ts', import.meta.url);

function blockFor(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end);
}

describe('workerResult', () => {
  it('gets the answer of a worker that exited while its parent was busy', async () => {
    const worker = startWorker(fixture, { behaviour: 'answer' });
    const result = workerResult<{ answer: number }>(worker);
    // Busy past the worker's whole life, so its message and its exit reach
    // this thread in one dispatch: the case that used to wait forever.
    blockFor(3_000);
    await expect(result).resolves.toEqual({ answer: 42 });
  });

  it('rejects with WORKER_ERR_NO_ANSWER when the worker exits without answering', async () => {
    await expect(workerResult(startWorker(fixture, { behaviour: 'silent' }))).rejects.toMatchObject({ code: 'WORKER_ERR_NO_ANSWER' });
  });

  it("rejects with the worker's own error when it throws", async () => {
    await expect(workerResult(startWorker(fixture, { behaviour: 'throw' }))).rejects.toThrow('the worker failed on purpose');
  });
});
