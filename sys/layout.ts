/**
 * x86_64 Linux constants and struct layouts used with the libc symbols in ffi.ts
 * (measured in docs/ffi-notes.md: msghdr 56 bytes, iovec 16, cmsghdr header 16 with an
 * 8-byte cmsg_len, epoll_event packed to 12 bytes).
 *
 * @module
 */

/** Socket, message, epoll, eventfd, mmap and open constants. */
export const C = {
  AF_UNIX: 1,
  SOCK_STREAM: 1,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_TYPE: 3,
  SO_SNDBUF: 7,
  SO_RCVBUF: 8,
  SO_ACCEPTCONN: 30,
  SCM_RIGHTS: 1,
  MSG_CTRUNC: 0x8,
  MSG_DONTWAIT: 0x40,
  MSG_NOSIGNAL: 0x4000,
  MSG_CMSG_CLOEXEC: 0x40000000,
  SHUT_RDWR: 2,
  EPOLLIN: 0x1,
  EPOLLOUT: 0x4,
  EPOLLERR: 0x8,
  EPOLLHUP: 0x10,
  EPOLLRDHUP: 0x2000,
  EPOLL_CTL_ADD: 1,
  EPOLL_CTL_DEL: 2,
  EPOLL_CTL_MOD: 3,
  EPOLL_CLOEXEC: 0o2000000,
  EFD_CLOEXEC: 0o2000000,
  EFD_NONBLOCK: 0o4000,
  EFD_SEMAPHORE: 1,
  CLOCK_MONOTONIC: 1,
  TFD_NONBLOCK: 0o4000,
  TFD_CLOEXEC: 0o2000000,
  PROT_READ: 1,
  PROT_WRITE: 2,
  MAP_SHARED: 1,
  MAP_PRIVATE: 2,
  MAP_FIXED: 0x10,
  MAP_ANONYMOUS: 0x20,
  O_RDONLY: 0,
  O_WRONLY: 1,
  O_RDWR: 2,
  O_CREAT: 0o100,
  O_TRUNC: 0o1000,
  O_CLOEXEC: 0o2000000,
  F_GETFD: 1,
  F_SETFD: 2,
  F_DUPFD_CLOEXEC: 1030,
  FD_CLOEXEC: 1,
  MFD_CLOEXEC: 1,
  MFD_ALLOW_SEALING: 2,
  F_ADD_SEALS: 1033,
  F_GET_SEALS: 1034,
  F_SEAL_SEAL: 1,
  F_SEAL_SHRINK: 2,
  F_SEAL_GROW: 4,
} as const;

/** struct iovec { void *iov_base; size_t iov_len; } */
export const IOVEC_SIZE = 16;
/** struct msghdr: name@0 namelen@8 iov@16 iovlen@24 control@32 controllen@40 flags@48. */
export const MSGHDR_SIZE = 56;
/** struct cmsghdr header: len u64 @0, level i32 @8, type i32 @12, data @16. */
export const CMSG_HDR = 16;
/** struct epoll_event { u32 events; u64 data; } __attribute__((packed)) */
export const EPOLL_EVENT_SIZE = 12;
/** Kernel limit of fds in one SCM_RIGHTS message. */
export const SCM_MAX_FD = 253;

/** CMSG_SPACE(n): room for n data bytes, 8-byte aligned. */
export function cmsgSpace(n: number): number {
  return CMSG_HDR + ((n + 7) & ~7);
}

/** Base addresses of large buffers (see {@link addressOf}). */
const bases = new WeakMap<ArrayBufferLike, bigint>();

/**
 * Address of the first byte of a typed array view (works for mmapped external buffers). For
 * buffers of a page or more (never kept inside V8's heap, so they do not move: guest RAM views,
 * bounce buffers) the buffer's base address is looked up once and views add their offset: a
 * request of many segments costs no FFI call per segment.
 */
export function addressOf(u8: Uint8Array): bigint {
  const buf = u8.buffer;
  if (buf.byteLength < 4096) return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(u8)));
  let base = bases.get(buf);
  if (base === undefined) {
    base = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
    bases.set(buf, base);
  }
  return base + BigInt(u8.byteOffset);
}

/** Fills `iov` (16 bytes per entry) with the addresses and lengths of `bufs`. */
export function fillIovec(iov: DataView, bufs: readonly Uint8Array[]): void {
  for (let i = 0; i < bufs.length; i++) {
    iov.setBigUint64(i * IOVEC_SIZE, bufs[i].length ? addressOf(bufs[i]) : 0n, true);
    iov.setBigUint64(i * IOVEC_SIZE + 8, BigInt(bufs[i].length), true);
  }
}
