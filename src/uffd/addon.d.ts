// The shape of the native addon (build/Release/uffd.node). Every function is one
// syscall; all policy lives in the TypeScript wrapper, the addon's only importer.
// Thrown errors are Error objects with code = errno name ('EEXIST'), errno (a
// positive number) and syscall ('ioctl(UFFDIO_REGISTER)'); bad arguments throw a
// TypeError whose message starts with "Usage: ".

/** A libuv poll handle watching one userfaultfd; opaque to JS. */
export interface PollHandle {
  readonly __pollHandle: unique symbol;
}

export interface NativeConstants {
  readonly O_CLOEXEC: number;
  readonly O_NONBLOCK: number;
  readonly UFFD_USER_MODE_ONLY: number;
  readonly MSG_SIZE: number;
  readonly UFFD_FEATURE_PAGEFAULT_FLAG_WP: number;
  readonly UFFD_FEATURE_EVENT_FORK: number;
  readonly UFFD_FEATURE_EVENT_REMAP: number;
  readonly UFFD_FEATURE_EVENT_REMOVE: number;
  readonly UFFD_FEATURE_EVENT_UNMAP: number;
  readonly UFFD_FEATURE_SIGBUS: number;
  readonly UFFD_FEATURE_THREAD_ID: number;
  readonly UFFD_FEATURE_EXACT_ADDRESS: number;
  readonly UFFDIO_REGISTER_MODE_MISSING: number;
  readonly UFFDIO_REGISTER_MODE_WP: number;
  readonly UFFDIO_COPY_MODE_DONTWAKE: number;
  readonly UFFDIO_COPY_MODE_WP: number;
  readonly UFFDIO_ZEROPAGE_MODE_DONTWAKE: number;
  readonly UFFDIO_WRITEPROTECT_MODE_WP: number;
  readonly UFFDIO_WRITEPROTECT_MODE_DONTWAKE: number;
  readonly UFFD_EVENT_PAGEFAULT: number;
  readonly UFFD_EVENT_FORK: number;
  readonly UFFD_EVENT_REMAP: number;
  readonly UFFD_EVENT_REMOVE: number;
  readonly UFFD_EVENT_UNMAP: number;
  readonly UFFD_PAGEFAULT_FLAG_WRITE: number;
  readonly UFFD_PAGEFAULT_FLAG_WP: number;
  readonly UFFD_PAGEFAULT_FLAG_MINOR: number;
  readonly _UFFDIO_REGISTER: number;
  readonly _UFFDIO_UNREGISTER: number;
  readonly _UFFDIO_WAKE: number;
  readonly _UFFDIO_COPY: number;
  readonly _UFFDIO_ZEROPAGE: number;
  readonly _UFFDIO_WRITEPROTECT: number;
  readonly _UFFDIO_CONTINUE: number;
  readonly _UFFDIO_API: number;
  readonly POLLIN: number;
  readonly POLLOUT: number;
  readonly POLLERR: number;
  readonly POLLHUP: number;
  readonly POLLNVAL: number;
  readonly EAGAIN: number;
  readonly EINTR: number;
}

export interface NativeAddon {
  readonly constants: NativeConstants;
  pageSize(): number;
  /** mmap(NULL, length, RW, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE): the address. */
  mmap(length: number): number;
  munmap(address: number, length: number): void;
  madviseDontneed(address: number, length: number): void;
  /** mincore(2): one byte per page, bit 0 set when resident. */
  mincore(address: number, length: number): Uint8Array;
  /** An external ArrayBuffer over [address, address+length) that never frees it. */
  view(address: number, length: number): ArrayBuffer;
  /** memcpy of src to [address, address+src.length). */
  writeMemory(address: number, src: Uint8Array): void;
  /** memset 0 over [address, address+length). */
  zeroMemory(address: number, length: number): void;
  /** Pages from address sharing the first one's zero-ness: -n if all zero (n ≤ maxZero), n if not (n ≤ maxData). */
  zeroRun(address: number, pageSize: number, maxData: number, maxZero: number): number;
  /** open(path) + ioctl(USERFAULTFD_IOC_NEW, flags): the new userfaultfd. */
  openDevice(path: string, flags: number): number;
  /** userfaultfd(2) with flags (O_CLOEXEC|O_NONBLOCK, optionally UFFD_USER_MODE_ONLY). */
  openSyscall(flags: number): number;
  /** UFFDIO_API requesting `features`: every feature and ioctl the kernel offers. */
  api(fd: number, features: number): { features: number; ioctls: bigint };
  /** UFFDIO_REGISTER: the ioctls available on the range (bit _UFFDIO_COPY etc). */
  register(fd: number, address: number, length: number, mode: number): bigint;
  unregister(fd: number, address: number, length: number): void;
  /** UFFDIO_COPY: bytes placed (less than source.length on a partial copy) or -errno. */
  copy(fd: number, address: number, source: Uint8Array, mode: number): number;
  /** UFFDIO_ZEROPAGE: bytes placed or -errno. */
  zeropage(fd: number, address: number, length: number, mode: number): number;
  wake(fd: number, address: number, length: number): void;
  writeProtect(fd: number, address: number, length: number, mode: number): void;
  /** Non-blocking read of whole uffd_msg records into buffer: how many were read. */
  read(fd: number, buffer: ArrayBuffer): number;
  close(fd: number): void;
  /** fcntl(F_DUPFD_CLOEXEC): a second descriptor for the same open file (a socket handed to another thread). */
  dup(fd: number): number;
  /** Watch fd on this thread's libuv loop; each wake-up drains into buffer and calls back. */
  pollStart(fd: number, buffer: ArrayBuffer, onMessages: (count: number, errno: string | null) => void): PollHandle;
  pollStop(handle: PollHandle): void;
  pollRef(handle: PollHandle, ref: boolean): void;
  /** uv_backend_fd: this thread's libuv loop as one descriptor, readable while the loop has work. */
  loopFd(): number;
  /** poll(2) over `set`, [fd, events, revents] triples (revents written back): ready count or -errno. */
  poll(set: Int32Array, timeoutMs: number): number;
  /** read(2) into [offset, offset + length) of `buffer` (RangeError outside it): bytes read, 0 at end of stream, or -errno (-EAGAIN: nothing there yet). */
  readBytes(fd: number, buffer: Uint8Array, offset: number, length: number): number;
  /** writev(2) of 1 to 8 chunks, passed as arguments: bytes written, possibly fewer than all, or -errno. */
  writev(fd: number, ...chunks: readonly Uint8Array[]): number;
  /** socketpair(AF_UNIX, SOCK_STREAM), both ends non-blocking and close-on-exec. */
  socketPair(): [number, number];
}
