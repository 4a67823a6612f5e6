// Event delivery shared by the backends: batches go to 'events' listeners;
// a batch read before anyone listens is kept, because the threads behind
// those faults stay asleep until someone places their pages.
import { EventEmitter } from 'node:events';
import type { UffdEvent, UffdEventMap } from './userfaultfd.ts';

export class EventQueue extends EventEmitter<UffdEventMap> {
  private pending: UffdEvent[] = [];

  constructor() {
    super();
    (this as EventEmitter).on('newListener', (name: string) => {
      if (name === 'events' && this.pending.length > 0) queueMicrotask(() => this.flushPending());
    });
  }

  protected deliver(events: UffdEvent[]): void {
    if (events.length === 0) return;
    if (this.listenerCount('events') === 0) {
      this.pending.push(...events);
      return;
    }
    this.emit('events', events);
  }

  private flushPending(): void {
    const events = this.pending;
    this.pending = [];
    this.deliver(events);
  }
}
