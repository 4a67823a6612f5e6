/* The guest programs' runtime: console, finisher, CLINT time, parameters. */
#ifndef GUEST_LIB_H
#define GUEST_LIB_H
#include <stdint.h>
#include <stddef.h>

#define RAM_BASE 0x80000000u
#define UART_BASE 0x10000000u
#define FINISHER_BASE 0x00100000u
#define CLINT_BASE 0x02000000u
#define BLOCK_BASE 0x10200000u
#define PARAMS_MAGIC 0x41504350u /* "PCPA" */
#define MAX_HARTS 4

struct params {
  uint32_t magic;
  uint32_t length;
  uint32_t ram_size;
  uint32_t harts;
  char args[];
};

extern char __heap_start[];

void putc_uart(char c);
void puts_uart(const char *s);
int printf(const char *fmt, ...);
void finish(int code) __attribute__((noreturn));
void hart_exit(int code) __attribute__((noreturn));
uint64_t clint_time(void);
void clint_set_timecmp(uint32_t hart, uint64_t when);
void clint_set_msip(uint32_t hart, uint32_t value);

/* Parameters from a1; NULL when a1 holds no block of ours (QEMU: a device tree). */
const struct params *params_from(uintptr_t a1);
uint32_t param_harts(const struct params *p);
/* Value of `key` (sizes accept K/M/G suffixes), or `fallback` when absent. */
uint32_t param_u32(const struct params *p, const char *key, uint32_t fallback);
/* Copy of the value of `key` into out (NUL-terminated), or fallback. */
const char *param_str(const struct params *p, const char *key, const char *fallback, char *out, size_t size);

/* Harts other than 0 mark themselves done; hart 0 waits for them before it exits. */
void hart_done(uint32_t hart);
void wait_harts_done(uint32_t harts);

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
int strcmp(const char *a, const char *b);
size_t strlen(const char *s);

static inline uint32_t read_csr_mcause(void) { uint32_t v; __asm__ volatile("csrr %0, mcause" : "=r"(v)); return v; }
#endif
