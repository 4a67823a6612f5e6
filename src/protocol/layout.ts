// The guest RAM layout both sides agree on in the handshake, and the page
// index type that keeps page numbers apart from byte offsets and addresses.
export type PageIndex = number & { readonly __brand: 'PageIndex' };

export interface RamLayout {
  /** Bytes per page; the host page size of the destination. */
  readonly pageSize: number;
  /** Guest-physical address of the first RAM byte. */
  readonly ramBase: number;
  /** RAM size in bytes, a multiple of pageSize. */
  readonly ramSize: number;
}

export function pageCountOf(layout: RamLayout): number {
  return layout.ramSize / layout.pageSize;
}

/** A page index the caller has already range-checked (decoders, bitmaps). */
export function pageIndex(n: number): PageIndex {
  return n as PageIndex;
}

/** Byte offset of a page inside a RAM view. */
export function byteOffsetOf(page: PageIndex, pageSize: number): number {
  return page * pageSize;
}
