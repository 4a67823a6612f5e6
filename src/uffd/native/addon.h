/* Shared helpers of the userfaultfd addon: argument checking that throws
 * "Usage: ..." TypeErrors, and errors that carry the errno name. Every export
 * is a thin wrapper over one syscall; policy lives in TypeScript. */
#ifndef POSTCOPY_UFFD_ADDON_H
#define POSTCOPY_UFFD_ADDON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

/* writev: its fd and up to 8 chunks (napi reports a longer call by its count). */
#define MAX_ARGS 9

/* Bails out of the calling export with NULL (a pending JS exception). */
#define CHECK(expr)                                                            \
  do {                                                                         \
    if (!(expr)) return NULL;                                                  \
  } while (0)

#define NAPI_OK(env, call)                                                     \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      addon_throw_pending(env, #call);                                         \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

typedef struct {
  napi_env env;
  const char *usage;
  size_t argc;
  napi_value argv[MAX_ARGS];
  napi_value self;
} args_t;

bool args_get(napi_env env, napi_callback_info info, const char *usage, size_t min, args_t *out);
bool arg_fd(args_t *a, size_t i, int *out);
bool arg_u64(args_t *a, size_t i, uint64_t *out);
bool arg_address(args_t *a, size_t i, uint64_t *out);
bool arg_string(args_t *a, size_t i, char *buf, size_t size);
bool arg_bytes(args_t *a, size_t i, void **data, size_t *length);
bool arg_arraybuffer(args_t *a, size_t i, void **data, size_t *length);
bool arg_function(args_t *a, size_t i);

/* Throws an Error whose code is the errno name, with .errno and .syscall. */
napi_value throw_errno(napi_env env, int err, const char *syscall);
void addon_throw_pending(napi_env env, const char *what);

napi_value make_number(napi_env env, double v);
napi_value make_bigint(napi_env env, uint64_t v);
napi_value make_undefined(napi_env env);

typedef struct {
  const char *name;
  double value;
} constant_t;
/* Adds the table to exports.constants, creating it if no module did yet. */
napi_status add_constants(napi_env env, napi_value exports, const constant_t *table, size_t count);

napi_status register_memory(napi_env env, napi_value exports);
napi_status register_ioctls(napi_env env, napi_value exports);
napi_status register_poll(napi_env env, napi_value exports);
napi_status register_blocking_io(napi_env env, napi_value exports);

#endif
