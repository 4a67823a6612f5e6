/* life: Conway's Game of Life on a torus, drawn into a framebuffer at a fixed
   guest address so a viewer (the dashboard) can show it from guest RAM:
     LIFE_FB = 0x8080_0000: u32 magic "LIFE" (0x4546494c), u32 width (256),
     u32 height (192), u32 generation, then width*height bytes, one per cell
     (0 dead, 255 alive), row-major.
   Hart 0 computes and prints a generation line; other harts stay parked.
   Args: gens=N (50, 0 = forever), seed=N (1), density=PERCENT (30). */
#include "lib.h"

#define LIFE_FB 0x80800000u
#define W 256
#define H 192

struct framebuffer {
  uint32_t magic;
  uint32_t width;
  uint32_t height;
  uint32_t generation;
  uint8_t cells[H][W];
};

static uint8_t next[H][W];

int main(uint32_t hart, uintptr_t a1) {
  if (hart != 0) return 0;
  const struct params *p = params_from(a1);
  uint32_t gens = param_u32(p, "gens", 50);
  uint32_t seed = param_u32(p, "seed", 1);
  uint32_t density = param_u32(p, "density", 30);
  struct framebuffer *fb = (struct framebuffer *)LIFE_FB;

  uint32_t rng = seed * 2654435761u + 1;
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      rng = rng * 1664525u + 1013904223u;
      fb->cells[y][x] = (rng >> 24) % 100 < density ? 255 : 0;
    }
  fb->width = W;
  fb->height = H;
  fb->generation = 0;
  fb->magic = 0x4546494cu;
  printf("life: %ux%u, seed %u, density %u%%, framebuffer at %08x\n", W, H, seed, density, LIFE_FB);

  for (uint32_t gen = 1; gens == 0 || gen <= gens; gen++) {
    uint32_t alive = 0;
    for (int y = 0; y < H; y++) {
      const uint8_t *up = fb->cells[(y + H - 1) % H], *row = fb->cells[y], *down = fb->cells[(y + 1) % H];
      for (int x = 0; x < W; x++) {
        int l = (x + W - 1) % W, r = (x + 1) % W;
        int n = (up[l] + up[x] + up[r] + row[l] + row[r] + down[l] + down[x] + down[r]) / 255;
        uint8_t live = (n == 3 || (n == 2 && row[x])) ? 255 : 0;
        next[y][x] = live;
        alive += live & 1;
      }
    }
    memcpy(fb->cells, next, sizeof next);
    fb->generation = gen;
    printf("life: generation %u, %u alive\n", gen, alive);
  }
  return 0;
}
