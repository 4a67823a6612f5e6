// Source RAM contents for transfer tests, computable from the page index so a
// worker can check what it reads without being sent the expected bytes.
export const PAGE = 4096;

/** Every 7th page (from 3) is zero; page 5 holds a -0 double (0x8000000000000000) and is NOT zero. */
export function fillPage(page: Uint8Array, index: number, generation = 0): void {
  const words = new Uint32Array(page.buffer, page.byteOffset, page.length / 4);
  if (index % 7 === 3 && generation === 0) {
    words.fill(0);
    return;
  }
  if (index === 5 && generation === 0) {
    words.fill(0);
    words[1] = 0x8000_0000;
    return;
  }
  for (let i = 0; i < words.length; i++) words[i] = (Math.imul(index + 1, 2654435761) + i * 40503 + generation * 977) >>> 0;
}

export function patternRam(pages: number): Uint8Array {
  const ram = new Uint8Array(pages * PAGE);
  for (let p = 0; p < pages; p++) fillPage(ram.subarray(p * PAGE, (p + 1) * PAGE), p);
  return ram;
}
