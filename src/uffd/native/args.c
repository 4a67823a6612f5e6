/* Argument checking and errno-carrying errors for the addon's exports. */
#include "addon.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static bool usage_error(args_t *a, const char *detail) {
  char msg[512];
  snprintf(msg, sizeof msg, "Usage: %s (%s)", a->usage, detail);
  napi_throw_type_error(a->env, "ERR_INVALID_ARG", msg);
  return false;
}

bool args_get(napi_env env, napi_callback_info info, const char *usage, size_t min, args_t *out) {
  out->env = env;
  out->usage = usage;
  out->argc = MAX_ARGS;
  if (napi_get_cb_info(env, info, &out->argc, out->argv, &out->self, NULL) != napi_ok) {
    addon_throw_pending(env, "napi_get_cb_info");
    return false;
  }
  if (out->argc < min) return usage_error(out, "missing arguments");
  return true;
}

static bool arg_double(args_t *a, size_t i, double *out) {
  napi_valuetype t;
  if (napi_typeof(a->env, a->argv[i], &t) != napi_ok || t != napi_number)
    return usage_error(a, "expected a number");
  napi_get_value_double(a->env, a->argv[i], out);
  return true;
}

bool arg_fd(args_t *a, size_t i, int *out) {
  double v;
  if (!arg_double(a, i, &v)) return false;
  if (v < 0 || v > 0x7fffffff || floor(v) != v) return usage_error(a, "expected a file descriptor");
  *out = (int)v;
  return true;
}

bool arg_u64(args_t *a, size_t i, uint64_t *out) {
  napi_valuetype t;
  if (napi_typeof(a->env, a->argv[i], &t) != napi_ok) return usage_error(a, "bad value");
  if (t == napi_bigint) {
    bool lossless;
    napi_get_value_bigint_uint64(a->env, a->argv[i], out, &lossless);
    if (!lossless) return usage_error(a, "bigint out of range");
    return true;
  }
  double v;
  if (!arg_double(a, i, &v)) return false;
  if (v < 0 || v > 9007199254740991.0 || floor(v) != v)
    return usage_error(a, "expected a non-negative safe integer");
  *out = (uint64_t)v;
  return true;
}

bool arg_address(args_t *a, size_t i, uint64_t *out) {
  if (!arg_u64(a, i, out)) return false;
  if (*out & 4095) return usage_error(a, "address/length must be a multiple of 4096");
  return true;
}

bool arg_string(args_t *a, size_t i, char *buf, size_t size) {
  size_t len;
  if (napi_get_value_string_utf8(a->env, a->argv[i], buf, size, &len) != napi_ok)
    return usage_error(a, "expected a string");
  if (len + 1 >= size) return usage_error(a, "string too long");
  return true;
}

bool arg_bytes(args_t *a, size_t i, void **data, size_t *length) {
  bool is_typed;
  napi_is_typedarray(a->env, a->argv[i], &is_typed);
  if (!is_typed) return usage_error(a, "expected a Uint8Array");
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  napi_get_typedarray_info(a->env, a->argv[i], &type, length, data, &ab, &offset);
  if (type != napi_uint8_array) return usage_error(a, "expected a Uint8Array");
  return true;
}

bool arg_arraybuffer(args_t *a, size_t i, void **data, size_t *length) {
  bool is_ab;
  napi_is_arraybuffer(a->env, a->argv[i], &is_ab);
  if (!is_ab) return usage_error(a, "expected an ArrayBuffer");
  napi_get_arraybuffer_info(a->env, a->argv[i], data, length);
  return true;
}

bool arg_function(args_t *a, size_t i) {
  napi_valuetype t;
  if (napi_typeof(a->env, a->argv[i], &t) != napi_ok || t != napi_function)
    return usage_error(a, "expected a function");
  return true;
}

napi_value throw_errno(napi_env env, int err, const char *syscall) {
  const char *name = strerrorname_np(err);
  char code[32];
  snprintf(code, sizeof code, "%s", name ? name : "EUNKNOWN");
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s (%s)", syscall, strerror(err), code);
  napi_value js_code, js_msg, error, js_errno, js_syscall;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &js_code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &js_msg);
  napi_create_error(env, js_code, js_msg, &error);
  napi_create_int32(env, err, &js_errno);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &js_syscall);
  napi_set_named_property(env, error, "errno", js_errno);
  napi_set_named_property(env, error, "syscall", js_syscall);
  napi_throw(env, error);
  return NULL;
}

void addon_throw_pending(napi_env env, const char *what) {
  bool pending;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  const napi_extended_error_info *info;
  napi_get_last_error_info(env, &info);
  char msg[256];
  snprintf(msg, sizeof msg, "%s failed: %s", what,
           info && info->error_message ? info->error_message : "unknown Node-API error");
  napi_throw_error(env, "ERR_NAPI", msg);
}

napi_value make_number(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

napi_status add_constants(napi_env env, napi_value exports, const constant_t *table, size_t count) {
  bool has;
  napi_value c;
  napi_status s = napi_has_named_property(env, exports, "constants", &has);
  if (s != napi_ok) return s;
  s = has ? napi_get_named_property(env, exports, "constants", &c) : napi_create_object(env, &c);
  if (s != napi_ok) return s;
  for (size_t i = 0; i < count; i++) {
    s = napi_set_named_property(env, c, table[i].name, make_number(env, table[i].value));
    if (s != napi_ok) return s;
  }
  return has ? napi_ok : napi_set_named_property(env, exports, "constants", c);
}

napi_value make_bigint(napi_env env, uint64_t v) {
  napi_value out;
  napi_create_bigint_uint64(env, v, &out);
  return out;
}

napi_value make_undefined(napi_env env) {
  napi_value out;
  napi_get_undefined(env, &out);
  return out;
}
