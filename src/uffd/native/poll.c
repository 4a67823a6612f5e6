/* Fault delivery on the libuv loop: a uv_poll_t watches the userfaultfd and,
 * on each wake-up, drains every pending uffd_msg into a caller-owned
 * ArrayBuffer and calls back JS with the batch size. Nothing blocks and
 * nothing spins: the loop sleeps in epoll until the kernel queues a fault. */
#include "addon.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/userfaultfd.h>
#include <uv.h>

int drain_messages(int fd, void *buf, size_t size, size_t *count);

typedef struct {
  uv_poll_t handle;
  napi_env env;
  int fd;
  void *buf;
  size_t size;
  napi_ref buffer_ref;
  napi_ref callback_ref;
  napi_async_context async;
  /* Held until the handle's close callback ran: a thread's teardown waits
   * for it, so this library is not unloaded while libuv still has to call
   * on_closed, which lives in it. */
  napi_async_cleanup_hook_handle cleanup;
  bool stopped;
} fault_poll_t;

static void on_closed(uv_handle_t *h) {
  fault_poll_t *p = h->data;
  napi_async_cleanup_hook_handle cleanup = p->cleanup;
  free(p);
  napi_remove_async_cleanup_hook(cleanup);
}

static void release(fault_poll_t *p, bool env_alive) {
  p->stopped = true;
  uv_poll_stop(&p->handle);
  if (env_alive) {
    napi_delete_reference(p->env, p->buffer_ref);
    napi_delete_reference(p->env, p->callback_ref);
    napi_async_destroy(p->env, p->async);
  }
  uv_close((uv_handle_t *)&p->handle, on_closed);
}

/* A handle already stopped is closing, and on_closed ends the wait. */
static void on_env_teardown(napi_async_cleanup_hook_handle hook, void *arg) {
  fault_poll_t *p = arg;
  if (!p->stopped) release(p, false);
}

/* Calls back(count, errnoName). An exception thrown by the callback becomes
 * the process's uncaught exception, as it would from any libuv callback. */
static void call_back(fault_poll_t *p, size_t count, int err) {
  napi_env env = p->env;
  napi_value fn, recv, argv[2], result;
  napi_get_reference_value(env, p->callback_ref, &fn);
  napi_get_global(env, &recv);
  napi_create_double(env, (double)count, &argv[0]);
  if (err) {
    const char *name = strerrorname_np(err);
    napi_create_string_utf8(env, name ? name : "EUNKNOWN", NAPI_AUTO_LENGTH, &argv[1]);
  } else {
    napi_get_null(env, &argv[1]);
  }
  if (napi_make_callback(env, p->async, recv, fn, 2, argv, &result) != napi_ok) {
    napi_value exception;
    if (napi_get_and_clear_last_exception(env, &exception) == napi_ok) napi_fatal_exception(env, exception);
  }
}

static void on_readable(uv_poll_t *h, int status, int events) {
  fault_poll_t *p = h->data;
  napi_handle_scope scope;
  if (napi_open_handle_scope(p->env, &scope) != napi_ok) return;
  if (status < 0) {
    call_back(p, 0, -status);
  } else {
    size_t cap = p->size / sizeof(struct uffd_msg);
    for (;;) {
      size_t count;
      int err = drain_messages(p->fd, p->buf, p->size, &count);
      if (count > 0 || err) call_back(p, count, err);
      /* The callback may have stopped this poll (and closed the fd). */
      if (p->stopped || err || count < cap) break;
    }
  }
  napi_close_handle_scope(p->env, scope);
}

static napi_value poll_start(napi_env env, napi_callback_info info) {
  args_t a;
  int fd;
  void *buf;
  size_t size;
  CHECK(args_get(env, info, "pollStart(fd: number, buffer: ArrayBuffer, onMessages: (count, errno) => void)", 3,
                 &a));
  CHECK(arg_fd(&a, 0, &fd));
  CHECK(arg_arraybuffer(&a, 1, &buf, &size));
  CHECK(arg_function(&a, 2));
  if (size < 32) return throw_errno(env, EINVAL, "pollStart");

  uv_loop_t *loop;
  NAPI_OK(env, napi_get_uv_event_loop(env, &loop));
  fault_poll_t *p = calloc(1, sizeof *p);
  if (!p) return throw_errno(env, ENOMEM, "pollStart");
  p->env = env;
  p->fd = fd;
  p->buf = buf;
  p->size = size;
  p->handle.data = p;
  int rc = uv_poll_init(loop, &p->handle, fd);
  if (rc < 0) {
    free(p);
    return throw_errno(env, -rc, "uv_poll_init");
  }
  if (napi_add_async_cleanup_hook(env, on_env_teardown, p, &p->cleanup) != napi_ok) {
    /* p leaks: libuv needs the handle until the close is done, and nothing here can wait for it. */
    uv_close((uv_handle_t *)&p->handle, NULL);
    return throw_errno(env, ENOMEM, "pollStart");
  }
  rc = uv_poll_start(&p->handle, UV_READABLE, on_readable);
  if (rc < 0) {
    p->stopped = true;
    uv_close((uv_handle_t *)&p->handle, on_closed);
    return throw_errno(env, -rc, "uv_poll_start");
  }
  napi_value resource_name;
  napi_create_string_utf8(env, "postcopy:userfaultfd", NAPI_AUTO_LENGTH, &resource_name);
  napi_async_init(env, NULL, resource_name, &p->async);
  napi_create_reference(env, a.argv[1], 1, &p->buffer_ref);
  napi_create_reference(env, a.argv[2], 1, &p->callback_ref);

  napi_value external;
  NAPI_OK(env, napi_create_external(env, p, NULL, NULL, &external));
  return external;
}

static bool arg_poll(args_t *a, size_t i, fault_poll_t **out) {
  napi_valuetype t;
  napi_typeof(a->env, a->argv[i], &t);
  if (t != napi_external) {
    napi_throw_type_error(a->env, "ERR_INVALID_ARG", a->usage);
    return false;
  }
  napi_get_value_external(a->env, a->argv[i], (void **)out);
  return true;
}

static napi_value poll_stop(napi_env env, napi_callback_info info) {
  args_t a;
  fault_poll_t *p;
  CHECK(args_get(env, info, "pollStop(handle: PollHandle)", 1, &a));
  CHECK(arg_poll(&a, 0, &p));
  if (p->stopped) return make_undefined(env);
  release(p, true);
  return make_undefined(env);
}

static napi_value poll_ref(napi_env env, napi_callback_info info) {
  args_t a;
  fault_poll_t *p;
  bool ref;
  CHECK(args_get(env, info, "pollRef(handle: PollHandle, ref: boolean)", 2, &a));
  CHECK(arg_poll(&a, 0, &p));
  napi_get_value_bool(env, a.argv[1], &ref);
  if (!p->stopped) {
    if (ref) uv_ref((uv_handle_t *)&p->handle);
    else uv_unref((uv_handle_t *)&p->handle);
  }
  return make_undefined(env);
}

/* uv_backend_fd: the epoll descriptor of this thread's libuv loop, readable
 * while the loop has work (a message from another thread, a termination). A
 * thread that sleeps in poll(2) instead of the loop includes it to know when
 * to let the loop run. */
static napi_value loop_fd(napi_env env, napi_callback_info info) {
  uv_loop_t *loop;
  NAPI_OK(env, napi_get_uv_event_loop(env, &loop));
  return make_number(env, (double)uv_backend_fd(loop));
}

napi_status register_poll(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"pollStart", NULL, poll_start, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollStop", NULL, poll_stop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pollRef", NULL, poll_ref, NULL, NULL, NULL, napi_enumerable, NULL},
      {"loopFd", NULL, loop_fd, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
