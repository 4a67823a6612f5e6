/* The userfaultfd addon's entry point. Context-aware (no static JS state), so
 * every worker thread may load it and view guest RAM mapped by another. */
#include "addon.h"

NAPI_MODULE_INIT() {
  if (register_memory(env, exports) != napi_ok) return NULL;
  if (register_ioctls(env, exports) != napi_ok) return NULL;
  if (register_poll(env, exports) != napi_ok) return NULL;
  if (register_blocking_io(env, exports) != napi_ok) return NULL;
  return exports;
}
