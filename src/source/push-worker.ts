// The source's push thread (QEMU's migration thread, in postcopy): pushes
// every page the destination does not hold yet on the bulk channel, which
// the main thread hands it when the push starts (and again after each
// recovery), so neither the main thread's event loop nor Node's streams
// stand between the push and the socket. It rehearses the push once loaded
// (push-rehearsal.ts).
import { rehearsePushQuietly } from './push-rehearsal.ts';
import { PushService } from './push-service.ts';
import { runPageThread } from './page-thread-worker.ts';
import type { PushThreadData } from './page-thread-messages.ts';

runPageThread<PushThreadData>({
  name: 'push',
  serve: (data, context) => new PushService(data, context),
  rehearse: rehearsePushQuietly,
});
