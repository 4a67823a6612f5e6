/* The userfaultfd itself: creation through /dev/userfaultfd or userfaultfd(2),
 * the UFFDIO_* ioctls, draining uffd_msg records, and close. COPY and
 * ZEROPAGE sit on the fault path, so they return bytes placed or -errno
 * instead of throwing: an expected EEXIST must not cost an Error object. */
#include "addon.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static napi_value open_device(napi_env env, napi_callback_info info) {
  args_t a;
  char path[4096];
  uint64_t flags;
  CHECK(args_get(env, info, "openDevice(path: string, flags: number)", 2, &a));
  CHECK(arg_string(&a, 0, path, sizeof path));
  CHECK(arg_u64(&a, 1, &flags));
  int dev = open(path, O_RDWR | O_CLOEXEC);
  if (dev < 0) return throw_errno(env, errno, "open");
  int fd = ioctl(dev, USERFAULTFD_IOC_NEW, (unsigned long)flags);
  int err = errno;
  close(dev);
  if (fd < 0) return throw_errno(env, err, "ioctl(USERFAULTFD_IOC_NEW)");
  return make_number(env, fd);
}

static napi_value open_syscall(napi_env env, napi_callback_info info) {
  args_t a;
  uint64_t flags;
  CHECK(args_get(env, info, "openSyscall(flags: number)", 1, &a));
  CHECK(arg_u64(&a, 0, &flags));
  long fd = syscall(__NR_userfaultfd, (int)flags);
  if (fd < 0) return throw_errno(env, errno, "userfaultfd");
  return make_number(env, (double)fd);
}

static napi_value api(napi_env env, napi_callback_info info) {
  args_t a;
  int fd;
  uint64_t features;
  CHECK(args_get(env, info, "api(fd: number, features: number)", 2, &a));
  CHECK(arg_fd(&a, 0, &fd));
  CHECK(arg_u64(&a, 1, &features));
  struct uffdio_api req = {.api = UFFD_API, .features = features};
  if (ioctl(fd, UFFDIO_API, &req) != 0) return throw_errno(env, errno, "ioctl(UFFDIO_API)");
  napi_value out;
  NAPI_OK(env, napi_create_object(env, &out));
  NAPI_OK(env, napi_set_named_property(env, out, "features", make_number(env, (double)req.features)));
  NAPI_OK(env, napi_set_named_property(env, out, "ioctls", make_bigint(env, req.ioctls)));
  return out;
}

static bool range_args(napi_env env, napi_callback_info info, const char *usage, size_t min, args_t *a,
                       int *fd, uint64_t *start, uint64_t *len) {
  return args_get(env, info, usage, min, a) && arg_fd(a, 0, fd) && arg_address(a, 1, start) &&
         arg_address(a, 2, len);
}

static napi_value do_register(napi_env env, napi_callback_info info) {
  args_t a;
  int fd;
  uint64_t start, len, mode;
  CHECK(range_args(env, info, "register(fd: number, address: number, length: number, mode: number)", 4, &a,
                   &fd, &start, &len));
  CHECK(arg_u64(&a, 3, &mode));
  struct uffdio_register req = {.range = {.start = start, .len = len}, .mode = mode};
  if (ioctl(fd, UFFDIO_REGISTER, &req) != 0) return throw_errno(env, errno, "ioctl(UFFDIO_REGISTER)");
  return make_bigint(env, req.ioctls);
}

static napi_value do_unregister(napi_env env, napi_callback_info info) {
  args_t a;
  int fd;
  uint64_t start, len;
  CHECK(range_args(env, info, "unregister(fd: number, address: number, length: number)", 3, &a, &fd, &start,
                   &len));
  struct uffdio_range req = {.start = start, .len = len};
  if (ioctl(fd, UFFDIO_UNREGISTER, &req) != 0) return throw_errno(env, errno, "ioctl(UFFDIO_UNREGISTER)");
  return make_undefined(env);
}

/* The kernel reports a partial copy as EAGAIN with .copy = bytes placed. */
static napi_value placed_or_errno(napi_env env, int rc, int64_t placed) {
  if (rc == 0 || placed > 0) return make_number(env, (double)placed);
  return make_number(env, placed < 0 ? (double)placed : -(double)errno);
}

static napi_value copy(napi_env env, napi_callback_info info) {
  args_t a;
  int fd;
  uint64_t dst, mode;
  void *src;
  size_t len;
  CHECK(args_get(env, info, "copy(fd: number, address: number, source: Uint8Array, mode: number)", 4, &a));
  CHECK(arg_fd(&a, 0, &fd));
  CHECK(arg_address(&a, 1, &dst));
  CHECK(arg_bytes(&a, 2, &src, &len));
  CHECK(arg_u64(&a, 3, &mode));
  struct uffdio_copy req = {.dst = dst, .src = (uintptr_t)src, .len = len, .mode = mode};
  int rc = ioctl(fd, UFFDIO_COPY, &req);
  return placed_or_errno(env, rc, rc == 0 ? (int64_t)len : req.copy);
}

static napi_value zeropage(napi_env env, napi_callback_info info) {
  args_t a;
  int fd;
  uint64_t start, len, mode;
  CHECK(range_args(env, info, "zeropage(fd: number, address: number, length: number, mode: number)", 4, &a,
                   &fd, &start, &len));
  CHECK(arg_u64(&a, 3, &mode));
  struct uffdio_zeropage req = {.range = {.start = start, .len = len}, .mode = mode};
  int rc = ioctl(fd, UFFDIO_ZEROPAGE, &req);
  return placed_or_errno(env, rc, rc == 0 ? (int64_t)len : req.zeropage);
}

static napi_value wake(napi_env env, napi_callback_info info) {
  args_t a;
  int fd;
  uint64_t start, len;
  CHECK(range_args(env, info, "wake(fd: number, address: number, length: number)", 3, &a, &fd, &start, &len));
  struct uffdio_range req = {.start = start, .len = len};
  if (ioctl(fd, UFFDIO_WAKE, &req) != 0) return throw_errno(env, errno, "ioctl(UFFDIO_WAKE)");
  return make_undefined(env);
}

static napi_value write_protect(napi_env env, napi_callback_info info) {
  args_t a;
  int fd;
  uint64_t start, len, mode;
  CHECK(range_args(env, info, "writeProtect(fd: number, address: number, length: number, mode: number)", 4, &a,
                   &fd, &start, &len));
  CHECK(arg_u64(&a, 3, &mode));
  struct uffdio_writeprotect req = {.range = {.start = start, .len = len}, .mode = mode};
  if (ioctl(fd, UFFDIO_WRITEPROTECT, &req) != 0) return throw_errno(env, errno, "ioctl(UFFDIO_WRITEPROTECT)");
  return make_undefined(env);
}

/* Reads whole uffd_msg records until the queue is empty or the buffer is full.
 * One read returns every queued message that fits, so a short read means the
 * queue was empty: reading again would only cost a syscall to learn EAGAIN on
 * the fault path. A message queued after that makes the fd readable again. */
int drain_messages(int fd, void *buf, size_t size, size_t *count) {
  size_t cap = size / sizeof(struct uffd_msg);
  *count = 0;
  while (*count < cap) {
    size_t want = (cap - *count) * sizeof(struct uffd_msg);
    ssize_t n = read(fd, (char *)buf + *count * sizeof(struct uffd_msg), want);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return 0;
      return errno;
    }
    *count += (size_t)n / sizeof(struct uffd_msg);
    if ((size_t)n < want) return 0;
  }
  return 0;
}

static napi_value do_read(napi_env env, napi_callback_info info) {
  args_t a;
  int fd;
  void *buf;
  size_t size, count;
  CHECK(args_get(env, info, "read(fd: number, buffer: ArrayBuffer)", 2, &a));
  CHECK(arg_fd(&a, 0, &fd));
  CHECK(arg_arraybuffer(&a, 1, &buf, &size));
  int err = drain_messages(fd, buf, size, &count);
  if (err) return throw_errno(env, err, "read");
  return make_number(env, (double)count);
}

static napi_value do_close(napi_env env, napi_callback_info info) {
  args_t a;
  int fd;
  CHECK(args_get(env, info, "close(fd: number)", 1, &a));
  CHECK(arg_fd(&a, 0, &fd));
  if (close(fd) != 0) return throw_errno(env, errno, "close");
  return make_undefined(env);
}

/* dup(2) with close-on-exec: lets another thread's event loop own a socket
 * or userfaultfd while this thread closes its own descriptor. */
static napi_value do_dup(napi_env env, napi_callback_info info) {
  args_t a;
  int fd;
  CHECK(args_get(env, info, "dup(fd: number)", 1, &a));
  CHECK(arg_fd(&a, 0, &fd));
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return throw_errno(env, errno, "dup");
  return make_number(env, (double)copy);
}

napi_status register_ioctls(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"openDevice", NULL, open_device, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openSyscall", NULL, open_syscall, NULL, NULL, NULL, napi_enumerable, NULL},
      {"api", NULL, api, NULL, NULL, NULL, napi_enumerable, NULL},
      {"register", NULL, do_register, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unregister", NULL, do_unregister, NULL, NULL, NULL, napi_enumerable, NULL},
      {"copy", NULL, copy, NULL, NULL, NULL, napi_enumerable, NULL},
      {"zeropage", NULL, zeropage, NULL, NULL, NULL, napi_enumerable, NULL},
      {"wake", NULL, wake, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writeProtect", NULL, write_protect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"read", NULL, do_read, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, do_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dup", NULL, do_dup, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_status s = napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  if (s != napi_ok) return s;

  const constant_t table[] = {
      {"O_CLOEXEC", O_CLOEXEC},
      {"O_NONBLOCK", O_NONBLOCK},
      {"UFFD_USER_MODE_ONLY", UFFD_USER_MODE_ONLY},
      {"MSG_SIZE", sizeof(struct uffd_msg)},
      {"UFFD_FEATURE_PAGEFAULT_FLAG_WP", UFFD_FEATURE_PAGEFAULT_FLAG_WP},
      {"UFFD_FEATURE_EVENT_FORK", UFFD_FEATURE_EVENT_FORK},
      {"UFFD_FEATURE_EVENT_REMAP", UFFD_FEATURE_EVENT_REMAP},
      {"UFFD_FEATURE_EVENT_REMOVE", UFFD_FEATURE_EVENT_REMOVE},
      {"UFFD_FEATURE_EVENT_UNMAP", UFFD_FEATURE_EVENT_UNMAP},
      {"UFFD_FEATURE_SIGBUS", UFFD_FEATURE_SIGBUS},
      {"UFFD_FEATURE_THREAD_ID", UFFD_FEATURE_THREAD_ID},
      {"UFFD_FEATURE_EXACT_ADDRESS", UFFD_FEATURE_EXACT_ADDRESS},
      {"UFFDIO_REGISTER_MODE_MISSING", UFFDIO_REGISTER_MODE_MISSING},
      {"UFFDIO_REGISTER_MODE_WP", UFFDIO_REGISTER_MODE_WP},
      {"UFFDIO_COPY_MODE_DONTWAKE", UFFDIO_COPY_MODE_DONTWAKE},
      {"UFFDIO_COPY_MODE_WP", UFFDIO_COPY_MODE_WP},
      {"UFFDIO_ZEROPAGE_MODE_DONTWAKE", UFFDIO_ZEROPAGE_MODE_DONTWAKE},
      {"UFFDIO_WRITEPROTECT_MODE_WP", UFFDIO_WRITEPROTECT_MODE_WP},
      {"UFFDIO_WRITEPROTECT_MODE_DONTWAKE", UFFDIO_WRITEPROTECT_MODE_DONTWAKE},
      {"UFFD_EVENT_PAGEFAULT", UFFD_EVENT_PAGEFAULT},
      {"UFFD_EVENT_FORK", UFFD_EVENT_FORK},
      {"UFFD_EVENT_REMAP", UFFD_EVENT_REMAP},
      {"UFFD_EVENT_REMOVE", UFFD_EVENT_REMOVE},
      {"UFFD_EVENT_UNMAP", UFFD_EVENT_UNMAP},
      {"UFFD_PAGEFAULT_FLAG_WRITE", UFFD_PAGEFAULT_FLAG_WRITE},
      {"UFFD_PAGEFAULT_FLAG_WP", UFFD_PAGEFAULT_FLAG_WP},
      {"UFFD_PAGEFAULT_FLAG_MINOR", UFFD_PAGEFAULT_FLAG_MINOR},
      {"_UFFDIO_REGISTER", _UFFDIO_REGISTER},
      {"_UFFDIO_UNREGISTER", _UFFDIO_UNREGISTER},
      {"_UFFDIO_WAKE", _UFFDIO_WAKE},
      {"_UFFDIO_COPY", _UFFDIO_COPY},
      {"_UFFDIO_ZEROPAGE", _UFFDIO_ZEROPAGE},
      {"_UFFDIO_WRITEPROTECT", _UFFDIO_WRITEPROTECT},
      {"_UFFDIO_CONTINUE", _UFFDIO_CONTINUE},
      {"_UFFDIO_API", _UFFDIO_API},
  };
  return add_constants(env, exports, table, sizeof table / sizeof table[0]);
}
