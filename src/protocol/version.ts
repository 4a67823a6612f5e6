// The protocol version and the size limits every decoder enforces before it
// parses anything.
// 2: the machine is built from machine-config in setup; machine-state carries only vCPU and device state.
// 3: precopy pages ride bulk, ordered by precopy-sync (they rode control).
// 4: page requests are binary frames (page-frame.ts), not msgpack.
export const PROTOCOL_VERSION = 4;

/** Largest page frame a sender may build, in pages (64 pages = 256 KiB at 4 KiB pages). */
export const MAX_PAGES_PER_FRAME = 256;

/** Largest zero run one frame may mark; it carries no payload so it may cover more. */
export const MAX_ZERO_RUN_PAGES = 1 << 16;

/** Largest page request, in page indexes. */
export const MAX_REQUEST_PAGES = 4096;

/** Largest control message (machine state, discard lists, recovery bitmaps). */
export const MAX_CONTROL_BYTES = 16 * 1024 * 1024;
