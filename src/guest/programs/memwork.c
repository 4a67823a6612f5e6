/* memwork: a tunable memory workload for migration experiments. Each hart
   walks its own working set (so runs are deterministic with any hart count)
   and hart 0 prints a heartbeat line every `beat` passes.
   Args: wss=SIZE per hart (256K), pattern=sequential|random|hotcold (random),
   write=PERCENT of accesses that store (50), passes=N (64, 0 = forever),
   beat=N passes per heartbeat line (8). A pass is one access per 64 bytes. */
#include "lib.h"

static uint32_t xorshift(uint32_t *s) {
  uint32_t x = *s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

enum pattern { SEQUENTIAL, RANDOM, HOTCOLD };

int main(uint32_t hart, uintptr_t a1) {
  const struct params *p = params_from(a1);
  uint32_t harts = param_harts(p);
  uint32_t wss = param_u32(p, "wss", 256 * 1024) & ~63u;
  uint32_t write_pct = param_u32(p, "write", 50);
  uint32_t passes = param_u32(p, "passes", 64);
  uint32_t beat = param_u32(p, "beat", 8);
  char name[16];
  const char *pname = param_str(p, "pattern", "random", name, sizeof name);
  enum pattern pat = strcmp(pname, "sequential") == 0 ? SEQUENTIAL : strcmp(pname, "hotcold") == 0 ? HOTCOLD : RANDOM;
  if (wss < 4096) wss = 4096;
  if (beat == 0) beat = 1;

  uintptr_t base = (uintptr_t)__heap_start + (uintptr_t)hart * wss;
  if (p && base + wss > RAM_BASE + p->ram_size - 4096) {
    if (hart == 0) printf("memwork: wss %u x %u harts does not fit in RAM\n", wss, harts);
    return 3;
  }
  volatile uint32_t *mem = (volatile uint32_t *)base;
  uint32_t lines = wss / 64;
  uint32_t hot_lines = lines / 10 ? lines / 10 : 1;
  uint32_t rng = 0x9e3779b9u ^ (hart * 0x85ebca6bu);
  uint32_t sum = 0;

  if (hart == 0) printf("memwork: %u harts, wss %u bytes per hart, pattern %s, write %u%%, passes %u\n", harts, wss, pname, write_pct, passes);
  for (uint32_t pass = 1; passes == 0 || pass <= passes; pass++) {
    for (uint32_t i = 0; i < lines; i++) {
      uint32_t r = xorshift(&rng);
      uint32_t line;
      if (pat == SEQUENTIAL) line = i;
      else if (pat == RANDOM) line = r % lines;
      else line = (r & 0xff) < 230 ? r % hot_lines : r % lines;
      uint32_t word = line * 16 + ((r >> 8) & 15);
      if ((r >> 12) % 100 < write_pct) mem[word] = r ^ pass;
      else sum += mem[word];
    }
    if (hart == 0 && pass % beat == 0) printf("memwork: pass %u sum %08x\n", pass, sum);
  }
  if (hart == 0) {
    wait_harts_done(harts);
    printf("memwork: done, sum %08x\n", sum);
  }
  return 0;
}
