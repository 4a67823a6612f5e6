/* Runtime for guest programs: a polled 16550 console, a small printf, the
   SiFive test finisher, CLINT access, and the parameter block. */
#include <stdarg.h>
#include "lib.h"

#define REG8(addr) (*(volatile uint8_t *)(uintptr_t)(addr))
#define REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

void putc_uart(char c) {
  while ((REG8(UART_BASE + 5) & 0x20) == 0) {
  }
  REG8(UART_BASE) = (uint8_t)c;
}

void puts_uart(const char *s) {
  while (*s) putc_uart(*s++);
}

static void put_unsigned(uint32_t v, unsigned base, int width, char pad) {
  char buf[12];
  int n = 0;
  do {
    unsigned d = v % base;
    buf[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
    v /= base;
  } while (v);
  while (width-- > n) putc_uart(pad);
  while (n) putc_uart(buf[--n]);
}

int printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  for (; *fmt; fmt++) {
    if (*fmt != '%') {
      putc_uart(*fmt);
      continue;
    }
    fmt++;
    char pad = ' ';
    int width = 0;
    if (*fmt == '0') {
      pad = '0';
      fmt++;
    }
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
    switch (*fmt) {
      case 'd': {
        int32_t v = va_arg(ap, int32_t);
        if (v < 0) {
          putc_uart('-');
          put_unsigned((uint32_t)0 - (uint32_t)v, 10, width ? width - 1 : 0, pad);
        } else {
          put_unsigned((uint32_t)v, 10, width, pad);
        }
        break;
      }
      case 'u': put_unsigned(va_arg(ap, uint32_t), 10, width, pad); break;
      case 'x': put_unsigned(va_arg(ap, uint32_t), 16, width, pad); break;
      case 'c': putc_uart((char)va_arg(ap, int)); break;
      case 's': {
        const char *s = va_arg(ap, const char *);
        int len = (int)strlen(s);
        while (width-- > len) putc_uart(' ');
        puts_uart(s);
        break;
      }
      case '%': putc_uart('%'); break;
      default: putc_uart('?'); break;
    }
  }
  va_end(ap);
  return 0;
}

void finish(int code) {
  REG32(FINISHER_BASE) = code == 0 ? 0x5555u : (((uint32_t)code << 16) | 0x3333u);
  for (;;) __asm__ volatile("wfi");
}

static volatile uint32_t done_flags[MAX_HARTS];

void hart_done(uint32_t hart) {
  if (hart < MAX_HARTS) done_flags[hart] = 1;
}

void wait_harts_done(uint32_t harts) {
  for (uint32_t h = 1; h < harts && h < MAX_HARTS; h++) {
    while (!done_flags[h]) {
    }
  }
}

/* main's return value: hart 0 ends the machine, the others report and park. */
void hart_exit(int code) {
  uint32_t hart;
  __asm__ volatile("csrr %0, mhartid" : "=r"(hart));
  if (hart == 0) finish(code);
  hart_done(hart);
  for (;;) __asm__ volatile("wfi");
}

void unexpected_trap(uint32_t cause, uint32_t epc, uint32_t tval) {
  printf("FAIL unexpected trap mcause=%08x mepc=%08x mtval=%08x\n", cause, epc, tval);
  finish(2);
}

uint64_t clint_time(void) {
  uint32_t hi, lo;
  do {
    hi = REG32(CLINT_BASE + 0xBFFC);
    lo = REG32(CLINT_BASE + 0xBFF8);
  } while (hi != REG32(CLINT_BASE + 0xBFFC));
  return ((uint64_t)hi << 32) | lo;
}

void clint_set_timecmp(uint32_t hart, uint64_t when) {
  uintptr_t at = CLINT_BASE + 0x4000 + 8 * hart;
  /* High word to all-ones first so no spurious interrupt fires between the halves. */
  REG32(at + 4) = 0xffffffffu;
  REG32(at) = (uint32_t)when;
  REG32(at + 4) = (uint32_t)(when >> 32);
}

void clint_set_msip(uint32_t hart, uint32_t value) { REG32(CLINT_BASE + 4 * hart) = value; }

const struct params *params_from(uintptr_t a1) {
  if (a1 < RAM_BASE || (a1 & 3) != 0) return NULL;
  const struct params *p = (const struct params *)a1;
  return p->magic == PARAMS_MAGIC ? p : NULL;
}

uint32_t param_harts(const struct params *p) { return p && p->harts >= 1 && p->harts <= MAX_HARTS ? p->harts : 1; }

/* Finds `key=` at a word boundary in the args string. */
static const char *find_value(const struct params *p, const char *key) {
  if (!p) return NULL;
  size_t klen = strlen(key);
  const char *s = p->args;
  while (*s) {
    while (*s == ' ') s++;
    const char *word = s;
    while (*s && *s != ' ') s++;
    if ((size_t)(s - word) > klen && word[klen] == '=' && memcmp(word, key, klen) == 0) return word + klen + 1;
  }
  return NULL;
}

uint32_t param_u32(const struct params *p, const char *key, uint32_t fallback) {
  const char *v = find_value(p, key);
  if (!v || *v < '0' || *v > '9') return fallback;
  uint32_t n = 0;
  while (*v >= '0' && *v <= '9') n = n * 10 + (uint32_t)(*v++ - '0');
  if (*v == 'K' || *v == 'k') n <<= 10;
  else if (*v == 'M' || *v == 'm') n <<= 20;
  else if (*v == 'G' || *v == 'g') n <<= 30;
  return n;
}

const char *param_str(const struct params *p, const char *key, const char *fallback, char *out, size_t size) {
  const char *v = find_value(p, key);
  if (!v) return fallback;
  size_t n = 0;
  while (v[n] && v[n] != ' ' && n + 1 < size) {
    out[n] = v[n];
    n++;
  }
  out[n] = 0;
  return out;
}

void *memset(void *d, int c, size_t n) {
  uint8_t *p = d;
  while (n--) *p++ = (uint8_t)c;
  return d;
}

void *memcpy(void *d, const void *s, size_t n) {
  uint8_t *p = d;
  const uint8_t *q = s;
  while (n--) *p++ = *q++;
  return d;
}

int memcmp(const void *a, const void *b, size_t n) {
  const uint8_t *p = a, *q = b;
  for (; n; n--, p++, q++)
    if (*p != *q) return *p - *q;
  return 0;
}

int strcmp(const char *a, const char *b) {
  while (*a && *a == *b) a++, b++;
  return (uint8_t)*a - (uint8_t)*b;
}

size_t strlen(const char *s) {
  size_t n = 0;
  while (s[n]) n++;
  return n;
}
