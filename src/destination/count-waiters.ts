// Promises that settle once a count (precopy pages in RAM) reaches the number
// each was made for; the count only grows.
export class CountWaiters {
  private waiting: { count: number; resolve: () => void }[] = [];

  get pending(): boolean {
    return this.waiting.length > 0;
  }

  wait(count: number): Promise<void> {
    return new Promise((resolve) => this.waiting.push({ count, resolve }));
  }

  /** The count is now `current`: settles every waiter it reaches. */
  reached(current: number): void {
    this.waiting = this.waiting.filter((w) => {
      if (w.count > current) return true;
      w.resolve();
      return false;
    });
  }
}
