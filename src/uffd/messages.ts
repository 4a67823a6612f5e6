// Decodes struct uffd_msg records (32 bytes each, see linux/userfaultfd.h)
// from the buffer the addon drains the fd into.
import type { NativeConstants } from './native.ts';
import type { UffdEvent } from './userfaultfd.ts';

const MSG_SIZE = 32;

function u64(view: DataView, at: number): number {
  return view.getUint32(at, true) + view.getUint32(at + 4, true) * 0x1_0000_0000;
}

export function decodeMessages(view: DataView, count: number, c: NativeConstants, threadIds: boolean): UffdEvent[] {
  const events: UffdEvent[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * MSG_SIZE;
    const type = view.getUint8(at);
    if (type === c.UFFD_EVENT_PAGEFAULT) {
      const flags = view.getUint32(at + 8, true);
      events.push({
        type: 'pagefault',
        address: u64(view, at + 16),
        write: (flags & c.UFFD_PAGEFAULT_FLAG_WRITE) !== 0,
        wp: (flags & c.UFFD_PAGEFAULT_FLAG_WP) !== 0,
        threadId: threadIds ? view.getUint32(at + 24, true) : null,
      });
    } else if (type === c.UFFD_EVENT_REMOVE || type === c.UFFD_EVENT_UNMAP) {
      events.push({
        type: type === c.UFFD_EVENT_REMOVE ? 'remove' : 'unmap',
        start: u64(view, at + 8),
        end: u64(view, at + 16),
      });
    } else if (type === c.UFFD_EVENT_REMAP) {
      events.push({ type: 'remap', from: u64(view, at + 8), to: u64(view, at + 16), length: u64(view, at + 24) });
    }
  }
  return events;
}
