/* Loopback TCP bandwidth: the ceiling for moving guest RAM between two
   processes on this machine. A forked sender writes BYTES in large writes to a
   receiver over 127.0.0.1; the receiver times each round from the connection
   to the last byte. Prints one JSON line.

     tcp-bandwidth [--bytes N] [--rounds R] [--chunk C]   (defaults: 1 GiB, 3, 1 MiB) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
  fprintf(stderr, "tcp-bandwidth: %s: %s\n", what, strerror(errno));
  exit(2);
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t arg_u64(int argc, char **argv, const char *name, uint64_t fallback) {
  for (int i = 1; i + 1 < argc; i++) {
    if (strcmp(argv[i], name) == 0) {
      char *end;
      uint64_t v = strtoull(argv[i + 1], &end, 10);
      if (*end != '\0' || v == 0) {
        fprintf(stderr, "tcp-bandwidth: %s needs a positive integer, got \"%s\"\n", name, argv[i + 1]);
        exit(2);
      }
      return v;
    }
  }
  return fallback;
}

static void send_all(int fd, uint64_t bytes, size_t chunk) {
  char *buf = malloc(chunk);
  if (!buf) die("malloc");
  /* Non-zero, so nothing on the way can treat the data as special. */
  memset(buf, 0x5a, chunk);
  while (bytes > 0) {
    size_t n = bytes < chunk ? (size_t)bytes : chunk;
    ssize_t w = write(fd, buf, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      die("write");
    }
    bytes -= (uint64_t)w;
  }
  free(buf);
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  uint64_t bytes = arg_u64(argc, argv, "--bytes", 1ull << 30);
  uint64_t rounds = arg_u64(argc, argv, "--rounds", 3);
  size_t chunk = (size_t)arg_u64(argc, argv, "--chunk", 1 << 20);
  if (rounds > 64) rounds = 64;

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) die("socket");
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof addr;
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind 127.0.0.1:0");
  if (listen(listener, 4) < 0) die("listen");
  if (getsockname(listener, (struct sockaddr *)&addr, &len) < 0) die("getsockname");

  pid_t sender = fork();
  if (sender < 0) die("fork");
  if (sender == 0) {
    for (uint64_t r = 0; r < rounds; r++) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) die("socket");
      if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
      send_all(fd, bytes, chunk);
      close(fd);
    }
    _exit(0);
  }

  char *buf = malloc(chunk);
  if (!buf) die("malloc");
  double gbps[64];
  for (uint64_t r = 0; r < rounds; r++) {
    int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) die("accept");
    double t0 = now_s();
    uint64_t got = 0;
    for (;;) {
      ssize_t n = read(fd, buf, chunk);
      if (n < 0) {
        if (errno == EINTR) continue;
        die("read");
      }
      if (n == 0) break;
      got += (uint64_t)n;
    }
    double seconds = now_s() - t0;
    close(fd);
    if (got != bytes) {
      fprintf(stderr, "tcp-bandwidth: round %llu received %llu of %llu bytes\n", (unsigned long long)r, (unsigned long long)got, (unsigned long long)bytes);
      return 1;
    }
    gbps[r] = (double)bytes / seconds / 1e9;
  }
  int status;
  if (waitpid(sender, &status, 0) < 0) die("waitpid");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "tcp-bandwidth: the sender failed\n");
    return 1;
  }

  double sorted[64];
  memcpy(sorted, gbps, sizeof(double) * rounds);
  qsort(sorted, rounds, sizeof(double), compare_double);
  printf("{\"bytesPerRound\":%llu,\"rounds\":%llu,\"chunkBytes\":%zu,\"gbPerSecond\":[", (unsigned long long)bytes, (unsigned long long)rounds, chunk);
  for (uint64_t r = 0; r < rounds; r++) printf("%s%.4f", r ? "," : "", gbps[r]);
  printf("],\"medianGBps\":%.4f,\"bestGBps\":%.4f}\n", sorted[rounds / 2], sorted[rounds - 1]);
  return 0;
}
