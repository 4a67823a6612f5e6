/* Guest RAM: anonymous private mappings, MADV_DONTNEED, zero-copy views, direct writes, and zero-page scans.
 * A view is an external ArrayBuffer with a no-op finalizer: the region that
 * called mmap owns the memory, so any thread may view it and none frees it. */
#include "addon.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static napi_value page_size(napi_env env, napi_callback_info info) {
  return make_number(env, (double)sysconf(_SC_PAGESIZE));
}

static napi_value do_mmap(napi_env env, napi_callback_info info) {
  args_t a;
  uint64_t length;
  CHECK(args_get(env, info, "mmap(length: number)", 1, &a));
  CHECK(arg_address(&a, 0, &length));
  if (length == 0) return throw_errno(env, EINVAL, "mmap");
  void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return throw_errno(env, errno, "mmap");
  return make_number(env, (double)(uintptr_t)p);
}

static napi_value do_munmap(napi_env env, napi_callback_info info) {
  args_t a;
  uint64_t address, length;
  CHECK(args_get(env, info, "munmap(address: number, length: number)", 2, &a));
  CHECK(arg_address(&a, 0, &address));
  CHECK(arg_address(&a, 1, &length));
  if (munmap((void *)(uintptr_t)address, length) != 0) return throw_errno(env, errno, "munmap");
  return make_undefined(env);
}

static napi_value madvise_dontneed(napi_env env, napi_callback_info info) {
  args_t a;
  uint64_t address, length;
  CHECK(args_get(env, info, "madviseDontneed(address: number, length: number)", 2, &a));
  CHECK(arg_address(&a, 0, &address));
  CHECK(arg_address(&a, 1, &length));
  if (madvise((void *)(uintptr_t)address, length, MADV_DONTNEED) != 0)
    return throw_errno(env, errno, "madvise(MADV_DONTNEED)");
  return make_undefined(env);
}

/* mincore(2): one byte per page, bit 0 set when the page is resident. */
static napi_value do_mincore(napi_env env, napi_callback_info info) {
  args_t a;
  uint64_t address, length;
  CHECK(args_get(env, info, "mincore(address: number, length: number)", 2, &a));
  CHECK(arg_address(&a, 0, &address));
  CHECK(arg_address(&a, 1, &length));
  size_t pages = length / (uint64_t)sysconf(_SC_PAGESIZE);
  void *data;
  napi_value ab, out;
  NAPI_OK(env, napi_create_arraybuffer(env, pages ? pages : 1, &data, &ab));
  if (pages && mincore((void *)(uintptr_t)address, length, data) != 0) return throw_errno(env, errno, "mincore");
  NAPI_OK(env, napi_create_typedarray(env, napi_uint8_array, pages, ab, 0, &out));
  return out;
}

static void no_free(napi_env env, void *data, void *hint) {}

static napi_value view(napi_env env, napi_callback_info info) {
  args_t a;
  uint64_t address, length;
  CHECK(args_get(env, info, "view(address: number, length: number)", 2, &a));
  CHECK(arg_address(&a, 0, &address));
  CHECK(arg_u64(&a, 1, &length));
  if (address == 0 || length == 0) return throw_errno(env, EINVAL, "view");
  napi_value ab;
  NAPI_OK(env, napi_create_external_arraybuffer(env, (void *)(uintptr_t)address, length, no_free, NULL, &ab));
  return ab;
}

/* The page threads' one direct write to guest RAM: a later precopy round's
 * copy of a page already placed, which UFFDIO_COPY refuses. Not through a
 * view: V8 counts a view's length toward its next full collection (a view of
 * all of RAM, made in the last round, set one off mid-switchover), and
 * detaching a view instead deoptimizes every function that reads a typed array. */
static napi_value write_memory(napi_env env, napi_callback_info info) {
  args_t a;
  uint64_t address;
  void *src;
  size_t length;
  CHECK(args_get(env, info, "writeMemory(address: number, src: Uint8Array)", 2, &a));
  CHECK(arg_address(&a, 0, &address));
  CHECK(arg_bytes(&a, 1, &src, &length));
  if (address == 0) return throw_errno(env, EINVAL, "writeMemory");
  memcpy((void *)(uintptr_t)address, src, length);
  return NULL;
}

static napi_value zero_memory(napi_env env, napi_callback_info info) {
  args_t a;
  uint64_t address, length;
  CHECK(args_get(env, info, "zeroMemory(address: number, length: number)", 2, &a));
  CHECK(arg_address(&a, 0, &address));
  CHECK(arg_u64(&a, 1, &length));
  if (address == 0) return throw_errno(env, EINVAL, "zeroMemory");
  memset((void *)(uintptr_t)address, 0, length);
  return NULL;
}

static bool page_is_zero(const uint64_t *words, size_t count) {
  for (size_t i = 0; i < count; i += 8)
    if (words[i] | words[i + 1] | words[i + 2] | words[i + 3] | words[i + 4] | words[i + 5] | words[i + 6] | words[i + 7]) return false;
  return true;
}

/* How many pages from address are, like the first, all zero (returned
 * negated, at most max_zero) or not (at most max_data). Each page is read up
 * to its first non-zero cache line. The push scans every page it sends: one
 * call per frame instead of a Buffer#compare per page took the check from 45
 * to 24 ms of the push thread's CPU in a 1 GiB memwork postcopy (perf). */
static napi_value zero_run(napi_env env, napi_callback_info info) {
  args_t a;
  uint64_t address, page_size, max_data, max_zero;
  CHECK(args_get(env, info, "zeroRun(address: number, pageSize: number, maxData: number, maxZero: number)", 4, &a));
  CHECK(arg_address(&a, 0, &address));
  CHECK(arg_u64(&a, 1, &page_size));
  CHECK(arg_u64(&a, 2, &max_data));
  CHECK(arg_u64(&a, 3, &max_zero));
  if (address == 0 || page_size == 0 || page_size % 64 != 0 || max_data == 0 || max_zero == 0) return throw_errno(env, EINVAL, "zeroRun");
  const size_t words = page_size / 8;
  const uint64_t *first = (const uint64_t *)(uintptr_t)address;
  const bool zero = page_is_zero(first, words);
  const uint64_t max = zero ? max_zero : max_data;
  uint64_t n = 1;
  while (n < max && page_is_zero(first + n * words, words) == zero) n++;
  return make_number(env, zero ? -(double)n : (double)n);
}

napi_status register_memory(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"pageSize", NULL, page_size, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mmap", NULL, do_mmap, NULL, NULL, NULL, napi_enumerable, NULL},
      {"munmap", NULL, do_munmap, NULL, NULL, NULL, napi_enumerable, NULL},
      {"madviseDontneed", NULL, madvise_dontneed, NULL, NULL, NULL, napi_enumerable, NULL},
      {"mincore", NULL, do_mincore, NULL, NULL, NULL, napi_enumerable, NULL},
      {"view", NULL, view, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writeMemory", NULL, write_memory, NULL, NULL, NULL, napi_enumerable, NULL},
      {"zeroMemory", NULL, zero_memory, NULL, NULL, NULL, napi_enumerable, NULL},
      {"zeroRun", NULL, zero_run, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  return napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
}
