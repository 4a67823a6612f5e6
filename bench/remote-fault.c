/* The floor for a postcopy page fault: the path the destination takes, done
   minimally in C, so the TypeScript figures can be read as ratios to it.

   A forked "source" holds REGION bytes (the first WSS bytes data, the rest
   zero) and serves them over two loopback TCP connections: `urgent` answers
   one request per page, `bulk` pushes every page not yet sent in runs (data
   runs up to 64 pages, zero runs up to 1024 as a marker), its scan restarting
   just after the last requested page. The "destination" maps REGION with
   MAP_NORESERVE, registers it with a userfaultfd (/dev/userfaultfd +
   USERFAULTFD_IOC_NEW, else userfaultfd(2)) and runs three threads:
     toucher  writes to random pages of the working set, timing each touch;
     handler  reads each uffd_msg, requests the page on `urgent`, receives it,
              UFFDIO_COPY (EEXIST: bulk won the race, UFFDIO_WAKE instead);
     bulk     receives pushed runs, one UFFDIO_COPY / UFFDIO_ZEROPAGE per run.
   Touches that took a fault give the touch → resume latency. The run ends when
   every page is present; then every page's content is checked.
   Prints one JSON line.

     remote-fault [--region BYTES] [--wss BYTES] [--push 0|1] [--max-faults N]
   Defaults: 1 GiB region, 512 MiB working set, push on. With --push 0 there
   is no background stream: the toucher stops after --max-faults (default
   20000) faults, giving the quiet floor. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define MAX_DATA_RUN 64u
#define MAX_ZERO_RUN 1024u
#define CHANNEL_URGENT 'U'
#define CHANNEL_BULK 'B'

/* Every reply and pushed run starts with this; `zero` runs carry no bytes. */
struct frame {
  uint32_t start;
  uint32_t count;
  uint32_t zero;
  uint32_t pad;
};

static uint64_t region_bytes = 1ull << 30;
static uint64_t wss_bytes = 512ull << 20;
static int push_enabled = 1;
static uint64_t max_faults = 20000;
static uint32_t page_count, wss_pages;

static void die(const char *what) {
  fprintf(stderr, "remote-fault: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void fail(const char *message) {
  fprintf(stderr, "remote-fault: %s\n", message);
  exit(2);
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static uint64_t arg_u64(int argc, char **argv, const char *name, uint64_t fallback) {
  for (int i = 1; i + 1 < argc; i++) {
    if (strcmp(argv[i], name) == 0) {
      char *end;
      uint64_t v = strtoull(argv[i + 1], &end, 10);
      if (*end != '\0') {
        fprintf(stderr, "remote-fault: %s needs an integer, got \"%s\"\n", name, argv[i + 1]);
        exit(2);
      }
      return v;
    }
  }
  return fallback;
}

/* The word every 8 bytes of data page p holds: never zero, differs per page. */
static uint64_t pattern(uint32_t p) { return 0x9e3779b97f4a7c15ull ^ ((uint64_t)p << 20) ^ 1; }

static void write_all(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      die("send");
    }
    p += w;
    n -= (size_t)w;
  }
}

/* 0 at a clean end of stream before the first byte, 1 when `n` bytes were read. */
static int read_all(int fd, void *buf, size_t n) {
  char *p = buf;
  size_t got = 0;
  while (got < n) {
    ssize_t r = recv(fd, p + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("recv");
    }
    if (r == 0) {
      if (got == 0) return 0;
      fail("the peer closed a connection mid-frame");
    }
    got += (size_t)r;
  }
  return 1;
}

static void no_delay(int fd) {
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) die("setsockopt TCP_NODELAY");
}

/* ---- source ---- */

static uint8_t *src_ram;
static _Atomic uint8_t *src_sent;
static _Atomic uint32_t src_cursor;

/* Per page: 1 if /proc/self/pagemap says it was never populated, so it reads
   as zeros without being read. Reading it would map the shared zero page, a
   page fault per page: on some virtual machines that alone costs several
   times the push. postcopy's source tells zero pages the same way. */
static uint8_t *src_unpopulated;

static void read_populated(void) {
  src_unpopulated = calloc(page_count, 1);
  if (!src_unpopulated) die("calloc");
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return; /* No pagemap: every page is compared. */
  static uint64_t entries[512];
  uint64_t first = (uint64_t)(uintptr_t)src_ram / PAGE;
  for (uint32_t p = 0; p < page_count; p += 512) {
    uint32_t n = page_count - p < 512 ? page_count - p : 512;
    if (pread(fd, entries, n * sizeof *entries, (off_t)((first + p) * sizeof *entries)) != (ssize_t)(n * sizeof *entries)) die("reading /proc/self/pagemap");
    for (uint32_t i = 0; i < n; i++) src_unpopulated[p + i] = (entries[i] >> 62) == 0;
  }
  close(fd);
}

static int page_is_zero(uint32_t p) {
  if (src_unpopulated[p]) return 1;
  const uint64_t *w = (const uint64_t *)(src_ram + (uint64_t)p * PAGE);
  for (unsigned i = 0; i < PAGE / 8; i++)
    if (w[i]) return 0;
  return 1;
}

/* Data runs leave through a buffer each sending thread reuses, as postcopy's
   source does, and not straight from the mapped RAM: on some virtual machines
   (PVM) the kernel's first read of each user page costs several microseconds,
   so a sendmsg from 512 MiB of distinct pages ran at about 0.5 GB/s against
   3.5 GB/s from a reused buffer, and made this floor's push 3-4x slower than
   a minimal postcopy needs to be. */
static void send_run(int fd, uint32_t start, uint32_t count, int zero) {
  static __thread uint8_t *bounce;
  struct frame f = {start, count, (uint32_t)zero, 0};
  if (zero) {
    write_all(fd, &f, sizeof f);
    return;
  }
  if (!bounce && !(bounce = aligned_alloc(PAGE, (size_t)MAX_DATA_RUN * PAGE))) die("aligned_alloc");
  memcpy(bounce, src_ram + (uint64_t)start * PAGE, (size_t)count * PAGE);
  struct iovec iov[2] = {{&f, sizeof f}, {bounce, (size_t)count * PAGE}};
  struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
  size_t left = sizeof f + (size_t)count * PAGE;
  while (left > 0) {
    ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      die("sendmsg");
    }
    left -= (size_t)w;
    while (w > 0 && m.msg_iovlen > 0) {
      if ((size_t)w >= m.msg_iov[0].iov_len) {
        w -= (ssize_t)m.msg_iov[0].iov_len;
        m.msg_iov++;
        m.msg_iovlen--;
      } else {
        m.msg_iov[0].iov_base = (char *)m.msg_iov[0].iov_base + w;
        m.msg_iov[0].iov_len -= (size_t)w;
        w = 0;
      }
    }
  }
}

static void *source_urgent(void *arg) {
  int fd = (int)(intptr_t)arg;
  uint32_t request[2];
  while (read_all(fd, request, sizeof request)) {
    uint32_t p = request[0];
    if (p >= page_count) fail("a request named a page outside the region");
    /* Resent even if bulk already sent it: that copy may still be queued behind a run. */
    atomic_store_explicit(&src_sent[p], 1, memory_order_relaxed);
    atomic_store_explicit(&src_cursor, (p + 1) % page_count, memory_order_relaxed);
    send_run(fd, p, 1, page_is_zero(p));
  }
  return NULL;
}

static void source_push(int fd) {
  for (;;) {
    uint32_t start = atomic_load_explicit(&src_cursor, memory_order_relaxed);
    uint32_t p = start, steps = 0;
    while (steps < page_count && atomic_load_explicit(&src_sent[p], memory_order_relaxed)) {
      p = (p + 1) % page_count;
      steps++;
    }
    if (steps == page_count) break;
    int zero = page_is_zero(p);
    uint32_t max = zero ? MAX_ZERO_RUN : MAX_DATA_RUN, n = 0;
    while (n < max && p + n < page_count && !atomic_load_explicit(&src_sent[p + n], memory_order_relaxed) && page_is_zero(p + n) == zero) {
      atomic_store_explicit(&src_sent[p + n], 1, memory_order_relaxed);
      n++;
    }
    /* A request for page p, answered between the scan and the run, leaves
       nothing to push here: a run of no pages is a malformed frame. */
    if (n == 0) continue;
    send_run(fd, p, n, zero);
    /* Continue after this run unless a request moved the cursor meanwhile. */
    atomic_compare_exchange_strong(&src_cursor, &start, (p + n) % page_count);
  }
  shutdown(fd, SHUT_WR);
}

static int run_source(int listener) {
  src_ram = mmap(NULL, region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (src_ram == MAP_FAILED) die("source mmap");
  for (uint32_t p = 0; p < wss_pages; p++) {
    uint64_t *w = (uint64_t *)(src_ram + (uint64_t)p * PAGE);
    uint64_t v = pattern(p);
    for (unsigned i = 0; i < PAGE / 8; i++) w[i] = v;
  }
  read_populated();
  src_sent = calloc(page_count, 1);
  if (!src_sent) die("calloc");
  int urgent = -1, bulk = -1;
  int channels = push_enabled ? 2 : 1;
  for (int i = 0; i < channels; i++) {
    int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) die("source accept");
    no_delay(fd);
    char kind;
    if (!read_all(fd, &kind, 1)) fail("a connection closed before naming its channel");
    if (kind == CHANNEL_URGENT) urgent = fd;
    else if (kind == CHANNEL_BULK) bulk = fd;
    else fail("unknown channel");
  }
  if (urgent < 0 || (push_enabled && bulk < 0)) fail("the destination did not open both channels");
  /* The kernel accepted the connections long before the fill above ended: say when pages can be served. */
  char ready = 'R';
  write_all(urgent, &ready, 1);
  pthread_t t;
  if (pthread_create(&t, NULL, source_urgent, (void *)(intptr_t)urgent)) fail("pthread_create");
  if (push_enabled) source_push(bulk);
  pthread_join(t, NULL);
  return 0;
}

/* ---- destination ---- */

static uint8_t *dst_ram;
static int uffd;
static const char *uffd_path;
static _Atomic uint8_t *placed;
static _Atomic uint32_t placed_count;
static _Atomic uint64_t faults_handled;
static _Atomic int finished;
static uint64_t *latencies_ns;
static uint64_t latency_count, latency_capacity;
/* Handler-side: uffd_msg read → page placed, the span postcopy's own fault histogram covers. */
static uint64_t *service_ns;
static uint64_t service_count;
static uint64_t touches, eexist_wakes;
static uint64_t copy_ioctls, zero_ioctls;

static void open_uffd(void) {
  int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev >= 0) {
    uffd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
    close(dev);
    if (uffd >= 0) {
      uffd_path = "dev";
      return;
    }
  }
  uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (uffd < 0) die("no userfaultfd: /dev/userfaultfd (USERFAULTFD_IOC_NEW) and userfaultfd(2) both refused; run as root or chmod /dev/userfaultfd");
  uffd_path = "syscall";
}

static void mark_placed(uint32_t start, uint32_t count) {
  uint32_t fresh = 0;
  for (uint32_t p = start; p < start + count; p++)
    if (!atomic_exchange_explicit(&placed[p], 1, memory_order_relaxed)) fresh++;
  if (atomic_fetch_add(&placed_count, fresh) + fresh == page_count) atomic_store(&finished, 1);
}

static void wake(uint32_t start, uint32_t count) {
  struct uffdio_range r = {(uint64_t)(uintptr_t)(dst_ram + (uint64_t)start * PAGE), (uint64_t)count * PAGE};
  if (ioctl(uffd, UFFDIO_WAKE, &r) < 0) die("UFFDIO_WAKE");
}

/* Places [start, start+count): pages someone else placed first are skipped (EEXIST) and their waiters woken. */
static void place(uint32_t start, uint32_t count, int zero, const uint8_t *bytes) {
  uint32_t done = 0;
  while (done < count) {
    uint64_t dst = (uint64_t)(uintptr_t)(dst_ram + (uint64_t)(start + done) * PAGE);
    uint64_t len = (uint64_t)(count - done) * PAGE;
    int64_t moved;
    int rc;
    if (zero) {
      struct uffdio_zeropage z = {.range = {dst, len}, .mode = 0};
      rc = ioctl(uffd, UFFDIO_ZEROPAGE, &z);
      moved = z.zeropage;
      zero_ioctls++;
    } else {
      struct uffdio_copy c = {.dst = dst, .src = (uint64_t)(uintptr_t)(bytes + (uint64_t)done * PAGE), .len = len, .mode = 0};
      rc = ioctl(uffd, UFFDIO_COPY, &c);
      moved = c.copy;
      copy_ioctls++;
    }
    if (rc == 0) {
      mark_placed(start + done, count - done);
      return;
    }
    if (moved > 0) {
      uint32_t n = (uint32_t)((uint64_t)moved / PAGE);
      mark_placed(start + done, n);
      done += n;
      continue;
    }
    if (errno == EAGAIN) continue;
    if (errno != EEXIST && moved != -EEXIST) die(zero ? "UFFDIO_ZEROPAGE" : "UFFDIO_COPY");
    wake(start + done, 1);
    mark_placed(start + done, 1);
    eexist_wakes++;
    done++;
  }
}

/* Names the calling thread, so that bench/fault-trace.ts can tell the
   toucher and the threads that place pages (and wake it) from the rest. */
static void name_thread(const char *name) {
  pthread_setname_np(pthread_self(), name);
}

static void *bulk_thread(void *arg) {
  int fd = (int)(intptr_t)arg;
  name_thread("rf:bulk");
  uint8_t *buf = malloc((size_t)MAX_DATA_RUN * PAGE);
  if (!buf) die("malloc");
  struct frame f;
  while (read_all(fd, &f, sizeof f)) {
    if (f.count == 0 || f.start >= page_count || f.count > page_count - f.start || f.count > (f.zero ? MAX_ZERO_RUN : MAX_DATA_RUN)) fail("bad bulk frame");
    if (!f.zero && !read_all(fd, buf, (size_t)f.count * PAGE)) fail("bulk closed mid-frame");
    place(f.start, f.count, (int)f.zero, buf);
  }
  free(buf);
  return NULL;
}

static void *handler_thread(void *arg) {
  int fd = (int)(intptr_t)arg;
  name_thread("rf:handler");
  uint8_t *buf = aligned_alloc(PAGE, PAGE);
  if (!buf) die("aligned_alloc");
  struct pollfd pfd = {.fd = uffd, .events = POLLIN};
  while (!atomic_load(&finished)) {
    int n = poll(&pfd, 1, 20);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("poll userfaultfd");
    }
    if (n == 0) continue;
    struct uffd_msg msg;
    ssize_t r = read(uffd, &msg, sizeof msg);
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      die("read userfaultfd");
    }
    uint64_t read_at = now_ns();
    if (r != sizeof msg || msg.event != UFFD_EVENT_PAGEFAULT) continue;
    uint32_t p = (uint32_t)((msg.arg.pagefault.address - (uint64_t)(uintptr_t)dst_ram) / PAGE);
    /* Bulk placed it after the fault was queued; its copy already woke the toucher. */
    if (atomic_load_explicit(&placed[p], memory_order_relaxed)) continue;
    uint32_t request[2] = {p, 0};
    write_all(fd, request, sizeof request);
    struct frame f;
    if (!read_all(fd, &f, sizeof f)) fail("the source closed urgent");
    if (f.start != p || f.count != 1) fail("urgent answered another page");
    if (!f.zero && !read_all(fd, buf, PAGE)) fail("urgent closed mid-page");
    atomic_fetch_add(&faults_handled, 1);
    place(p, 1, (int)f.zero, buf);
    if (service_count < latency_capacity) service_ns[service_count++] = now_ns() - read_at;
  }
  free(buf);
  return NULL;
}

static void *toucher_thread(void *arg) {
  (void)arg;
  name_thread("rf:toucher");
  uint64_t rng = 0x2545f4914f6cdd1dull;
  while (!atomic_load_explicit(&finished, memory_order_relaxed)) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    uint32_t p = (uint32_t)(rng % wss_pages);
    volatile uint8_t *b = dst_ram + (uint64_t)p * PAGE + ((rng >> 40) & (PAGE - 8));
    uint64_t before = atomic_load_explicit(&faults_handled, memory_order_acquire);
    uint64_t t0 = now_ns();
    /* Store the value already there, so the final check sees the source's data. */
    *b = *b;
    uint64_t t1 = now_ns();
    touches++;
    if (atomic_load_explicit(&faults_handled, memory_order_acquire) != before && latency_count < latency_capacity) {
      latencies_ns[latency_count++] = t1 - t0;
      if (!push_enabled && latency_count >= max_faults) atomic_store(&finished, 1);
    }
  }
  return NULL;
}

static int connect_channel(const struct sockaddr_in *addr, char kind) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) < 0) die("connect to the source");
  no_delay(fd);
  write_all(fd, &kind, 1);
  return fd;
}

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static double percentile_us(const uint64_t *sorted, uint64_t n, double q) {
  if (n == 0) return 0;
  uint64_t i = (uint64_t)(q * (double)(n - 1) + 0.5);
  return (double)sorted[i] / 1000.0;
}

static int run_destination(const struct sockaddr_in *addr) {
  dst_ram = mmap(NULL, region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (dst_ram == MAP_FAILED) die("destination mmap");
  open_uffd();
  struct uffdio_api api = {.api = UFFD_API, .features = 0};
  if (ioctl(uffd, UFFDIO_API, &api) < 0) die("UFFDIO_API");
  struct uffdio_register reg = {.range = {(uint64_t)(uintptr_t)dst_ram, region_bytes}, .mode = UFFDIO_REGISTER_MODE_MISSING};
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) die("UFFDIO_REGISTER");
  placed = calloc(page_count, 1);
  latency_capacity = 1 << 22;
  latencies_ns = malloc(latency_capacity * sizeof *latencies_ns);
  service_ns = malloc(latency_capacity * sizeof *service_ns);
  if (!placed || !latencies_ns || !service_ns) die("allocating bookkeeping");

  int urgent = connect_channel(addr, CHANNEL_URGENT);
  int bulk = push_enabled ? connect_channel(addr, CHANNEL_BULK) : -1;
  char ready;
  if (!read_all(urgent, &ready, 1) || ready != 'R') fail("the source did not get ready");
  uint64_t t0 = now_ns();
  pthread_t handler, pusher, toucher;
  if (pthread_create(&handler, NULL, handler_thread, (void *)(intptr_t)urgent)) fail("pthread_create");
  if (push_enabled && pthread_create(&pusher, NULL, bulk_thread, (void *)(intptr_t)bulk)) fail("pthread_create");
  if (pthread_create(&toucher, NULL, toucher_thread, NULL)) fail("pthread_create");
  if (push_enabled) pthread_join(pusher, NULL);
  pthread_join(toucher, NULL);
  pthread_join(handler, NULL);
  uint64_t elapsed = now_ns() - t0;
  shutdown(urgent, SHUT_WR);

  int verified = 1;
  uint32_t present = atomic_load(&placed_count);
  if (push_enabled) {
    if (present != page_count) verified = 0;
    for (uint32_t p = 0; verified && p < page_count; p++) {
      const uint64_t *w = (const uint64_t *)(dst_ram + (uint64_t)p * PAGE);
      uint64_t want = p < wss_pages ? pattern(p) : 0;
      for (unsigned i = 0; i < PAGE / 8; i++)
        if (w[i] != want) {
          fprintf(stderr, "remote-fault: page %u word %u is %016llx, expected %016llx\n", p, i, (unsigned long long)w[i], (unsigned long long)want);
          verified = 0;
          break;
        }
    }
  }

  qsort(latencies_ns, latency_count, sizeof *latencies_ns, compare_u64);
  qsort(service_ns, service_count, sizeof *service_ns, compare_u64);
  printf("{\"uffd\":\"%s\",\"regionBytes\":%llu,\"wssBytes\":%llu,\"push\":%s,\"elapsedMs\":%.2f,\"touches\":%llu,\"faults\":%llu,"
         "\"latencyUs\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"max\":%.2f},"
         "\"serviceUs\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f,\"max\":%.2f},\"pushGBps\":%.4f,\"copyIoctls\":%llu,\"zeroIoctls\":%llu,"
         "\"eexistWakes\":%llu,\"pagesPresent\":%u,\"verified\":%s}\n",
         uffd_path, (unsigned long long)region_bytes, (unsigned long long)wss_bytes, push_enabled ? "true" : "false", (double)elapsed / 1e6,
         (unsigned long long)touches, (unsigned long long)latency_count, percentile_us(latencies_ns, latency_count, 0.5),
         percentile_us(latencies_ns, latency_count, 0.9), percentile_us(latencies_ns, latency_count, 0.99), percentile_us(latencies_ns, latency_count, 1),
         percentile_us(service_ns, service_count, 0.5), percentile_us(service_ns, service_count, 0.9), percentile_us(service_ns, service_count, 0.99),
         percentile_us(service_ns, service_count, 1), push_enabled ? (double)region_bytes / ((double)elapsed / 1e9) / 1e9 : 0.0,
         (unsigned long long)copy_ioctls, (unsigned long long)zero_ioctls, (unsigned long long)eexist_wakes, present,
         push_enabled && !verified ? "false" : "true");
  return verified ? 0 : 1;
}

int main(int argc, char **argv) {
  region_bytes = arg_u64(argc, argv, "--region", region_bytes);
  wss_bytes = arg_u64(argc, argv, "--wss", wss_bytes);
  push_enabled = arg_u64(argc, argv, "--push", 1) != 0;
  max_faults = arg_u64(argc, argv, "--max-faults", max_faults);
  if (region_bytes < PAGE || region_bytes % PAGE || region_bytes / PAGE > UINT32_MAX) fail("--region must be a positive multiple of 4096");
  if (wss_bytes < PAGE || wss_bytes % PAGE || wss_bytes > region_bytes) fail("--wss must be a multiple of 4096, at least one page and at most --region");
  if (max_faults == 0) fail("--max-faults must be positive");
  page_count = (uint32_t)(region_bytes / PAGE);
  wss_pages = (uint32_t)(wss_bytes / PAGE);

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) die("socket");
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof addr;
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind 127.0.0.1:0");
  if (listen(listener, 4) < 0) die("listen");
  if (getsockname(listener, (struct sockaddr *)&addr, &len) < 0) die("getsockname");

  /* The source must not share the destination's threads or mappings: fork before either exists. */
  pid_t source = fork();
  if (source < 0) die("fork");
  if (source == 0) _exit(run_source(listener));
  close(listener);
  int rc = run_destination(&addr);
  int status;
  if (waitpid(source, &status, 0) < 0) die("waitpid");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) fail("the source process failed");
  return rc;
}
