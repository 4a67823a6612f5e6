/* Blocking I/O for a thread that owns its descriptors outright, as QEMU's
 * postcopy fault thread does: poll(2) over a few descriptors, read(2) and
 * writev(2) on a socket. No libuv, no callbacks: the calling thread sleeps in
 * the kernel until a descriptor is ready. */
#include "addon.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_POLL_FDS 16
#define MAX_IOV 8

static napi_value count_or_errno(napi_env env, ssize_t n) {
  return make_number(env, n >= 0 ? (double)n : -(double)errno);
}

/* set: Int32Array of [fd, events, revents] triples; revents are written back. */
static napi_value do_poll(napi_env env, napi_callback_info info) {
  args_t a;
  uint64_t timeout;
  CHECK(args_get(env, info, "poll(set: Int32Array of [fd, events, revents] triples, timeoutMs: number)", 2, &a));
  bool is_typed;
  napi_is_typedarray(env, a.argv[0], &is_typed);
  napi_typedarray_type type;
  size_t length = 0;
  int32_t *set = NULL;
  napi_value ab;
  size_t offset;
  if (is_typed) napi_get_typedarray_info(env, a.argv[0], &type, &length, (void **)&set, &ab, &offset);
  if (!is_typed || type != napi_int32_array || length % 3 != 0 || length / 3 > MAX_POLL_FDS) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "Usage: poll(set: Int32Array of at most 16 [fd, events, revents] triples, timeoutMs: number)");
    return NULL;
  }
  CHECK(arg_u64(&a, 1, &timeout));
  struct pollfd fds[MAX_POLL_FDS];
  size_t n = length / 3;
  for (size_t i = 0; i < n; i++) {
    fds[i].fd = set[i * 3];
    fds[i].events = (short)set[i * 3 + 1];
    fds[i].revents = 0;
  }
  int rc = poll(fds, n, timeout > 0x7fffffff ? -1 : (int)timeout);
  for (size_t i = 0; i < n; i++) set[i * 3 + 2] = rc > 0 ? fds[i].revents : 0;
  return count_or_errno(env, rc);
}

/* read(2) into [offset, offset + length) of buffer: bytes read, 0 at end of
 * stream, or -errno (-EAGAIN when nothing is there). The range is passed
 * rather than a view of it, which would be an object made for every read. */
static napi_value read_bytes(napi_env env, napi_callback_info info) {
  args_t a;
  int fd;
  void *buf;
  size_t len;
  uint64_t offset, length;
  CHECK(args_get(env, info, "readBytes(fd: number, buffer: Uint8Array, offset: number, length: number)", 4, &a));
  CHECK(arg_fd(&a, 0, &fd));
  CHECK(arg_bytes(&a, 1, &buf, &len));
  CHECK(arg_u64(&a, 2, &offset));
  CHECK(arg_u64(&a, 3, &length));
  if (offset > len || length > len - offset) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "readBytes: [offset, offset + length) is outside the buffer");
    return NULL;
  }
  return count_or_errno(env, read(fd, (char *)buf + offset, length));
}

/* writev(2) of the 1 to 8 chunks passed after the fd, as separate arguments:
 * an array would cost a property lookup per chunk on every frame of the
 * fault path. Bytes written (maybe fewer than all) or -errno. */
static napi_value do_writev(napi_env env, napi_callback_info info) {
  args_t a;
  int fd;
  CHECK(args_get(env, info, "writev(fd: number, ...chunks: Uint8Array[]) (1 to 8 chunks)", 2, &a));
  CHECK(arg_fd(&a, 0, &fd));
  size_t count = a.argc - 1;
  if (count > MAX_IOV) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "Usage: writev(fd: number, ...chunks: Uint8Array[]) (1 to 8 chunks)");
    return NULL;
  }
  struct iovec iov[MAX_IOV];
  for (size_t i = 0; i < count; i++) CHECK(arg_bytes(&a, i + 1, &iov[i].iov_base, &iov[i].iov_len));
  return count_or_errno(env, writev(fd, iov, (int)count));
}

/* socketpair(AF_UNIX, SOCK_STREAM, non-blocking, close-on-exec): [fd, fd]. */
static napi_value socket_pair(napi_env env, napi_callback_info info) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) return throw_errno(env, errno, "socketpair");
  napi_value pair;
  NAPI_OK(env, napi_create_array_with_length(env, 2, &pair));
  NAPI_OK(env, napi_set_element(env, pair, 0, make_number(env, fds[0])));
  NAPI_OK(env, napi_set_element(env, pair, 1, make_number(env, fds[1])));
  return pair;
}

napi_status register_blocking_io(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"poll", NULL, do_poll, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readBytes", NULL, read_bytes, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writev", NULL, do_writev, NULL, NULL, NULL, napi_enumerable, NULL},
      {"socketPair", NULL, socket_pair, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_status s = napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  if (s != napi_ok) return s;
  const constant_t table[] = {
      {"POLLIN", POLLIN}, {"POLLOUT", POLLOUT}, {"POLLERR", POLLERR}, {"POLLHUP", POLLHUP}, {"POLLNVAL", POLLNVAL},
      {"EAGAIN", EAGAIN}, {"EINTR", EINTR},
  };
  return add_constants(env, exports, table, sizeof table / sizeof table[0]);
}
