/* diskio: writes blocks through the block device (RAM -> disk DMA), reads
   them back into a cleared buffer (disk -> RAM DMA) and verifies them. Each
   hart uses its own sector range and buffer. Hart 0 reports.
   Args: blocks=N per round (32), sectors=N per block (8), rounds=N (1, 0 = forever). */
#include "lib.h"

#define REG32(off) (*(volatile uint32_t *)(uintptr_t)(BLOCK_BASE + (off)))
#define BLK_MAGIC 0x00
#define BLK_SECTOR 0x04
#define BLK_ADDR 0x08
#define BLK_LEN 0x0C
#define BLK_COMMAND 0x10
#define BLK_STATUS 0x14
#define BLK_CAPACITY 0x18
#define BLK_ERRNO 0x1C
#define CMD_READ 1
#define CMD_WRITE 2
#define MAX_SECTORS 128

static uint8_t buffers[MAX_HARTS][MAX_SECTORS * 512] __attribute__((aligned(4096)));

static uint32_t transfer(uint32_t command, uint32_t sector, void *buf, uint32_t len) {
  REG32(BLK_SECTOR) = sector;
  REG32(BLK_ADDR) = (uint32_t)(uintptr_t)buf;
  REG32(BLK_LEN) = len;
  REG32(BLK_COMMAND) = command;
  return REG32(BLK_STATUS);
}

static uint32_t pattern(uint32_t hart, uint32_t round, uint32_t block, uint32_t word) {
  return (hart << 28) ^ (round * 0x01000193u) ^ (block << 16) ^ word ^ 0x5a5a0000u;
}

int main(uint32_t hart, uintptr_t a1) {
  const struct params *p = params_from(a1);
  uint32_t harts = param_harts(p);
  uint32_t blocks = param_u32(p, "blocks", 32);
  uint32_t sectors = param_u32(p, "sectors", 8);
  uint32_t rounds = param_u32(p, "rounds", 1);
  if (sectors == 0 || sectors > MAX_SECTORS) sectors = 8;
  uint32_t len = sectors * 512;
  uint32_t *buf = (uint32_t *)buffers[hart];

  if (REG32(BLK_MAGIC) != 0x4b4c4250u) {
    if (hart == 0) printf("diskio: no block device at %08x\n", BLOCK_BASE);
    return 4;
  }
  uint32_t capacity = REG32(BLK_CAPACITY);
  uint32_t first = hart * blocks * sectors;
  if (hart == 0) printf("diskio: capacity %u sectors, %u harts, %u blocks of %u bytes each\n", capacity, harts, blocks, len);
  if ((uint64_t)harts * blocks * sectors > capacity) {
    if (hart == 0) printf("diskio: disk too small\n");
    return 5;
  }

  uint32_t errors = 0;
  for (uint32_t round = 1; rounds == 0 || round <= rounds; round++) {
    uint32_t verified = 0;
    for (uint32_t b = 0; b < blocks; b++) {
      for (uint32_t w = 0; w < len / 4; w++) buf[w] = pattern(hart, round, b, w);
      uint32_t status = transfer(CMD_WRITE, first + b * sectors, buf, len);
      if (status != 0) {
        errors++;
        if (hart == 0) printf("diskio: write block %u failed: status %u errno %u\n", b, status, REG32(BLK_ERRNO));
      }
    }
    for (uint32_t b = 0; b < blocks; b++) {
      memset(buf, 0, len);
      uint32_t status = transfer(CMD_READ, first + b * sectors, buf, len);
      if (status != 0) {
        errors++;
        if (hart == 0) printf("diskio: read block %u failed: status %u errno %u\n", b, status, REG32(BLK_ERRNO));
        continue;
      }
      uint32_t bad = 0;
      for (uint32_t w = 0; w < len / 4; w++) bad += buf[w] != pattern(hart, round, b, w);
      if (bad) {
        errors++;
        if (hart == 0) printf("diskio: block %u: %u words differ\n", b, bad);
      } else {
        verified++;
      }
    }
    if (hart == 0) printf("diskio: round %u: wrote %u blocks, verified %u\n", round, blocks, verified);
  }
  if (hart == 0) {
    wait_harts_done(harts);
    printf("diskio: %s, %u errors\n", errors ? "FAIL" : "PASS", errors);
  }
  return errors ? 1 : 0;
}
