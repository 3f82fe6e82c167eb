/**
 * Every libc symbol vfud uses, in one place, with its C prototype. Raw fds (sockets, eventfds,
 * memfds, epoll) cannot become Deno resources, so the socket path is driven through FFI
 * (see docs/ffi-notes.md). Only `--allow-ffi` is needed.
 *
 * x86_64 Linux (glibc) layouts are assumed; `layout.ts` holds the struct offsets.
 *
 * @module
 */

import { Errno, ErrnoError } from "./errno.ts";

const SYMBOLS = {
  /** int *__errno_location(void); */
  __errno_location: { parameters: [], result: "pointer" },
  /** char *strerror(int errnum); */
  strerror: { parameters: ["i32"], result: "pointer" },
  /** int socket(int domain, int type, int protocol); */
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** int socketpair(int domain, int type, int protocol, int sv[2]); */
  socketpair: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  /** int bind(int sockfd, const struct sockaddr *addr, socklen_t addrlen); */
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /** int listen(int sockfd, int backlog); */
  listen: { parameters: ["i32", "i32"], result: "i32" },
  /** int accept4(int sockfd, struct sockaddr *addr, socklen_t *addrlen, int flags); */
  accept4: { parameters: ["i32", "pointer", "pointer", "i32"], result: "i32" },
  /** int connect(int sockfd, const struct sockaddr *addr, socklen_t addrlen); */
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /** int getsockname(int sockfd, struct sockaddr *addr, socklen_t *addrlen); */
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  /** int getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen); */
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  /** int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen); */
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  /** int shutdown(int sockfd, int how); */
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  /** ssize_t sendmsg(int sockfd, const struct msghdr *msg, int flags); */
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  /** ssize_t recvmsg(int sockfd, struct msghdr *msg, int flags); */
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  /** int close(int fd); */
  close: { parameters: ["i32"], result: "i32" },
  /** ssize_t read(int fd, void *buf, size_t count); */
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** ssize_t write(int fd, const void *buf, size_t count); */
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** int open(const char *pathname, int flags, ... mode_t mode); (mode passed as a fixed arg) */
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  /** ssize_t preadv(int fd, const struct iovec *iov, int iovcnt, off_t offset); */
  preadv: { parameters: ["i32", "buffer", "i32", "i64"], result: "isize" },
  /** ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset); */
  pwritev: { parameters: ["i32", "buffer", "i32", "i64"], result: "isize" },
  /** int fdatasync(int fd); */
  fdatasync: { parameters: ["i32"], result: "i32" },
  /** int ftruncate(int fd, off_t length); */
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  /** off_t lseek(int fd, off_t offset, int whence); */
  lseek: { parameters: ["i32", "i64", "i32"], result: "i64" },
  /** void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset); */
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  /** int munmap(void *addr, size_t length); */
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  /** int pipe2(int pipefd[2], int flags); */
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  /** int eventfd(unsigned int initval, int flags); */
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  /** int timerfd_create(int clockid, int flags); */
  timerfd_create: { parameters: ["i32", "i32"], result: "i32" },
  /**
   * int timerfd_settime(int fd, int flags, const struct itimerspec *new_value,
   *                     struct itimerspec *old_value);
   */
  timerfd_settime: { parameters: ["i32", "i32", "buffer", "buffer"], result: "i32" },
  /** int memfd_create(const char *name, unsigned int flags); */
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },
  /** int epoll_create1(int flags); */
  epoll_create1: { parameters: ["i32"], result: "i32" },
  /** int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event); */
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  /** int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout); */
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  /** Same as epoll_wait, run on Deno's blocking thread pool so the JS event loop stays free. */
  epoll_wait_async: {
    name: "epoll_wait",
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  /** int fcntl(int fd, int cmd, ... int arg); (arg passed as a fixed arg) */
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** int ioctl(int fd, unsigned long request, ... void *argp); (argp passed as a fixed arg) */
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  /** int fsync(int fd); */
  fsync: { parameters: ["i32"], result: "i32" },
  /** int fallocate(int fd, int mode, off_t offset, off_t len); */
  fallocate: { parameters: ["i32", "i32", "i64", "i64"], result: "i32" },
  /**
   * long syscall(SYS_io_uring_setup, u32 entries, struct io_uring_params *p);
   * (glibc has no wrapper; syscall() is variadic, called here with fixed integer arguments)
   */
  io_uring_setup: { name: "syscall", parameters: ["i64", "u32", "buffer"], result: "i64" },
  /**
   * long syscall(SYS_io_uring_enter, unsigned int fd, u32 to_submit, u32 min_complete,
   *              u32 flags, const sigset_t *sig, size_t sigsz);
   */
  io_uring_enter: {
    name: "syscall",
    parameters: ["i64", "u32", "u32", "u32", "u32", "pointer", "usize"],
    result: "i64",
  },
  /**
   * long syscall(SYS_io_uring_register, unsigned int fd, unsigned int opcode, void *arg,
   *              unsigned int nr_args);
   */
  io_uring_register: {
    name: "syscall",
    parameters: ["i64", "u32", "u32", "buffer", "u32"],
    result: "i64",
  },
  /** pid_t getpid(void); */
  getpid: { parameters: [], result: "i32" },
  /**
   * ssize_t sendto(int sockfd, const void *buf, size_t len, int flags,
   *                const struct sockaddr *dest_addr, socklen_t addrlen);
   */
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  /**
   * int statx(int dirfd, const char *pathname, int flags, unsigned int mask,
   *           struct statx *statxbuf);
   */
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  /** int chmod(const char *pathname, mode_t mode); */
  chmod: { parameters: ["buffer", "u32"], result: "i32" },
  /** int lchown(const char *pathname, uid_t owner, gid_t group); */
  lchown: { parameters: ["buffer", "u32", "u32"], result: "i32" },
  /** int link(const char *oldpath, const char *newpath); */
  link: { parameters: ["buffer", "buffer"], result: "i32" },
  /** int unlink(const char *pathname); */
  unlink: { parameters: ["buffer"], result: "i32" },
  /** uid_t geteuid(void); */
  geteuid: { parameters: [], result: "u32" },
  /** gid_t getegid(void); */
  getegid: { parameters: [], result: "u32" },
  /**
   * int getgrnam_r(const char *name, struct group *grp, char *buf, size_t buflen,
   *                struct group **result);
   */
  getgrnam_r: {
    parameters: ["buffer", "buffer", "buffer", "usize", "buffer"],
    result: "i32",
  },
  /**
   * int getgrgid_r(gid_t gid, struct group *grp, char *buf, size_t buflen,
   *                struct group **result);
   */
  getgrgid_r: { parameters: ["u32", "buffer", "buffer", "usize", "buffer"], result: "i32" },
  /**
   * int getpwuid_r(uid_t uid, struct passwd *pwd, char *buf, size_t buflen,
   *                struct passwd **result);
   */
  getpwuid_r: { parameters: ["u32", "buffer", "buffer", "usize", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * The symbols an I/O thread (sys/aio.ts) opens for itself: it runs self-contained code with no
 * imports, so the prototypes travel with it. iovec arrays are passed by address.
 */
export const IO_THREAD_SYMBOLS = {
  __errno_location: SYMBOLS.__errno_location,
  /** ssize_t preadv(int fd, const struct iovec *iov, int iovcnt, off_t offset); */
  preadv: { parameters: ["i32", "pointer", "i32", "i64"], result: "isize" },
  /** ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset); */
  pwritev: { parameters: ["i32", "pointer", "i32", "i64"], result: "isize" },
  /** ssize_t readv(int fd, const struct iovec *iov, int iovcnt); */
  readv: { parameters: ["i32", "pointer", "i32"], result: "isize" },
  /** ssize_t writev(int fd, const struct iovec *iov, int iovcnt); */
  writev: { parameters: ["i32", "pointer", "i32"], result: "isize" },
  fdatasync: SYMBOLS.fdatasync,
  fsync: SYMBOLS.fsync,
  fallocate: SYMBOLS.fallocate,
  write: SYMBOLS.write,
} as const satisfies Deno.ForeignLibraryInterface;

/** The opened libc with every symbol above. */
export const libc: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] =
  Deno.dlopen("libc.so.6", SYMBOLS).symbols;

// errno lives in thread-local storage; one view per thread, made once.
const errnoView = new Int32Array(
  Deno.UnsafePointerView.getArrayBuffer(libc.__errno_location()!, 4),
);

/** Current thread's errno (read it right after the failing sync call). */
export function errno(): number {
  return errnoView[0];
}

/** An OS call failure with its errno and the call's name. */
export class SysError extends ErrnoError {
  constructor(call: string, err: number) {
    super(err, `${call}: ${strerror(err)} (errno ${err})`);
    this.name = "SysError";
  }
}

/** Human-readable text of an errno. */
export function strerror(err: number): string {
  const p = libc.strerror(err);
  return p === null ? `errno ${err}` : Deno.UnsafePointerView.getCString(p);
}

/**
 * The one errno helper: returns `ret` when it is not negative, else throws `SysError` with the
 * current errno. `EINTR` is never returned to callers: they use {@link retry}.
 */
export function check<T extends number | bigint>(call: string, ret: T): T {
  if (ret < 0) throw new SysError(call, errno());
  return ret;
}

/** Runs a syscall wrapper again while it fails with EINTR; returns the raw result. */
export function retry<T extends number | bigint>(fn: () => T): T {
  for (;;) {
    const r = fn();
    if (r >= 0 || errno() !== Errno.EINTR) return r;
  }
}

/** Closes `fd`, ignoring errors (used on cleanup paths where there is nothing left to do). */
export function closeFd(fd: number): void {
  if (fd >= 0) libc.close(fd);
}

/** NUL-terminated C string for FFI `buffer` parameters. */
export function cstr(s: string): Uint8Array {
  return new TextEncoder().encode(s + "\0");
}
