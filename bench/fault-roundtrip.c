/* The C floor for bench/fault-roundtrip.ts: one thread touches distinct random
 * missing pages of a registered 1 GiB MAP_NORESERVE region; a handler thread
 * polls the userfaultfd, reads the faults and places each page with
 * UFFDIO_COPY. Prints each measured touch's latency in nanoseconds, one a
 * line, after "# path dev|syscall".
 *
 *   fault-roundtrip REGION_BYTES WARMUP TOUCHES SEED */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

static int uffd;
static char source[PAGE] __attribute__((aligned(PAGE)));

static void die(const char *what) {
  fprintf(stderr, "fault-roundtrip: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* The same order as the TypeScript layer's `auto`: the device, then the syscall. */
static const char *open_userfaultfd(void) {
  int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev >= 0) {
    uffd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
    close(dev);
    if (uffd >= 0) return "dev";
  }
  uffd = (int)syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (uffd < 0) die("userfaultfd");
  return "syscall";
}

static void *serve(void *unused) {
  struct uffd_msg msgs[64];
  struct pollfd pfd = {.fd = uffd, .events = POLLIN};
  for (;;) {
    if (poll(&pfd, 1, -1) < 0 && errno != EINTR) die("poll");
    ssize_t n = read(uffd, msgs, sizeof msgs);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      die("read");
    }
    for (ssize_t i = 0; i < n / (ssize_t)sizeof msgs[0]; i++) {
      if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
      struct uffdio_copy copy = {
          .dst = msgs[i].arg.pagefault.address & ~(uint64_t)(PAGE - 1),
          .src = (uintptr_t)source,
          .len = PAGE,
      };
      if (ioctl(uffd, UFFDIO_COPY, &copy) != 0 && errno != EEXIST) die("UFFDIO_COPY");
    }
  }
  return NULL;
}

static uint64_t xorshift(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s REGION_BYTES WARMUP TOUCHES SEED\n", argv[0]);
    return 2;
  }
  size_t length = strtoull(argv[1], NULL, 0);
  size_t warmup = strtoull(argv[2], NULL, 0), touches = strtoull(argv[3], NULL, 0);
  uint64_t seed = strtoull(argv[4], NULL, 0) | 1;
  size_t pages = length / PAGE, total = warmup + touches;
  if (total > pages) {
    fprintf(stderr, "fault-roundtrip: %zu touches do not fit %zu pages\n", total, pages);
    return 2;
  }

  /* Distinct random pages: the first `total` of a partial Fisher-Yates shuffle. */
  uint32_t *order = malloc(pages * sizeof *order);
  uint64_t *latency = malloc(touches * sizeof *latency);
  if (!order || !latency) die("malloc");
  for (size_t i = 0; i < pages; i++) order[i] = (uint32_t)i;
  for (size_t i = 0; i < total; i++) {
    size_t j = i + xorshift(&seed) % (pages - i);
    uint32_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  memset(source, 0x5a, PAGE);

  char *region = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (region == MAP_FAILED) die("mmap");
  const char *path = open_userfaultfd();
  struct uffdio_api api = {.api = UFFD_API};
  if (ioctl(uffd, UFFDIO_API, &api) != 0) die("UFFDIO_API");
  struct uffdio_register reg = {.range = {.start = (uintptr_t)region, .len = length},
                                .mode = UFFDIO_REGISTER_MODE_MISSING};
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) die("UFFDIO_REGISTER");
  pthread_t server;
  if (pthread_create(&server, NULL, serve, NULL) != 0) die("pthread_create");

  /* This thread is the toucher; the handler thread is the only other one. */
  unsigned sum = 0;
  for (size_t i = 0; i < total; i++) {
    volatile char *at = region + (size_t)order[i] * PAGE;
    uint64_t start = now_ns();
    sum += *at;
    uint64_t end = now_ns();
    if (i >= warmup) latency[i - warmup] = end - start;
  }
  if (sum != 0x5au * total) {
    fprintf(stderr, "fault-roundtrip: read back wrong bytes\n");
    return 1;
  }
  printf("# path %s\n", path);
  for (size_t i = 0; i < touches; i++) printf("%llu\n", (unsigned long long)latency[i]);
  return 0;
}
