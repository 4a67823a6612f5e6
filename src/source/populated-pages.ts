// Which pages of guest RAM were ever populated, from /proc/self/pagemap: one
// 64-bit entry per page of our address space, bit 63 set if the page is
// present, bit 62 if it is swapped out (or any other non-present entry).
// In a private anonymous mapping a page with neither was never written or
// was discarded, so it reads as zeros: the page server calls it a zero page
// without reading it. Reading it would fault in the shared zero page, once
// per page of a guest that never touched most of its RAM: that fault, not the
// memcmp, was most of what zero detection cost on the bulk push.
//
// Only sound for MAP_PRIVATE | MAP_ANONYMOUS memory (kernel regions): a page
// of a shared mapping may hold data while it is not mapped here.
import { closeSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';

/** Pages whose entries are read at once (4 KiB of pagemap); each is read once per refresh. */
const CHUNK_PAGES = 512;
const ENTRY_BYTES = 8;
/** Bits 62 (swapped) and 63 (present), in an entry's upper 32 bits. */
const POPULATED_BITS = 0xc000_0000;
const HIGH_WORD = endianness() === 'LE' ? 1 : 0;
const UNKNOWN = 0;
const EMPTY = 1;
const POPULATED = 2;

export class PopulatedPages {
  private readonly entries = new Uint32Array(CHUNK_PAGES * 2);
  private readonly bytes = new Uint8Array(this.entries.buffer);
  /** Per page: UNKNOWN until its chunk is read, then EMPTY or POPULATED. */
  private readonly pages: Uint8Array;
  /** Host page number of the RAM's first page. */
  private readonly firstHostPage: number;

  private constructor(
    private fd: number | undefined,
    address: number,
    pageCount: number,
    pageSize: number,
  ) {
    this.firstHostPage = address / pageSize;
    this.pages = new Uint8Array(pageCount);
  }

  /**
   * For RAM mapped private and anonymous at `address` (page aligned); none
   * where pagemap cannot be read (not Linux, no /proc), and then every page
   * is compared.
   */
  static open(address: number, pageCount: number, pageSize: number): PopulatedPages | undefined {
    let fd: number;
    try {
      fd = openSync('/proc/self/pagemap', 'r');
    } catch {
      return undefined;
    }
    return new PopulatedPages(fd, address, pageCount, pageSize);
  }

  /**
   * False only if `page` was not populated when the pagemap was read for it
   * (it reads as zeros); true if it was, or if that cannot be told.
   */
  mayHoldData(page: number): boolean {
    if (this.pages[page] === UNKNOWN) this.read(page - (page % CHUNK_PAGES));
    return this.pages[page] !== EMPTY;
  }

  /**
   * Forget what was read. An answer is only as fresh as the read it came
   * from: the caller refreshes whenever pages may have been written since
   * (each precopy round, whose dirty log was taken after the last read, and
   * the switchover; after it the vCPUs never write here again).
   */
  refresh(): void {
    this.pages.fill(UNKNOWN);
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
    this.pages.fill(POPULATED);
  }

  private read(first: number): void {
    const count = Math.min(CHUNK_PAGES, this.pages.length - first);
    let entries = 0;
    if (this.fd !== undefined) {
      try {
        entries = Math.floor(readSync(this.fd, this.bytes, 0, count * ENTRY_BYTES, (this.firstHostPage + first) * ENTRY_BYTES) / ENTRY_BYTES);
      } catch {
        // Compare every page from now on rather than guess.
        this.close();
        return;
      }
    }
    for (let i = 0; i < count; i++) {
      // A short read leaves pages past it unknown to the kernel's answer: they are compared.
      this.pages[first + i] = i < entries && (this.entries[i * 2 + HIGH_WORD] & POPULATED_BITS) === 0 ? EMPTY : POPULATED;
    }
  }
}
