/**
 * UNIX stream sockets through FFI: listen/accept/connect, and `sendmsg`/`recvmsg` carrying
 * file descriptors as SCM_RIGHTS ancillary data.
 *
 * @module
 */
import { check, closeFd, errno, libc, retry, SysError } from "./ffi.ts";
import { Errno } from "./errno.ts";
import { chgrpPath, chmodPath, linkPath, lstatPath, unlinkPath } from "./files.ts";
import {
  C,
  CMSG_HDR,
  cmsgSpace,
  fillIovec,
  IOVEC_SIZE,
  MSGHDR_SIZE,
  SCM_MAX_FD,
} from "./layout.ts";

const SUN_PATH_MAX = 108;

function sockaddrUn(path: string): Uint8Array {
  const p = new TextEncoder().encode(path);
  if (p.length >= SUN_PATH_MAX) {
    throw new Error(
      `${path}: socket path too long (${p.length} bytes, at most ${SUN_PATH_MAX - 1})`,
    );
  }
  const sa = new Uint8Array(2 + SUN_PATH_MAX);
  new DataView(sa.buffer).setUint16(0, C.AF_UNIX, true);
  sa.set(p, 2);
  return sa;
}

function newSocket(): number {
  return check(
    "socket",
    libc.socket(C.AF_UNIX, C.SOCK_STREAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0),
  );
}

/** Connects to the UNIX socket at `path`; returns a non-blocking fd. */
export function connectUnix(path: string): number {
  const fd = newSocket();
  const sa = sockaddrUn(path);
  // A non-blocking connect on AF_UNIX completes at once or fails (EAGAIN: backlog full).
  const r = retry(() => libc.connect(fd, sa, sa.length));
  if (r < 0) {
    const err = errno();
    closeFd(fd);
    throw new SysError(`connect ${path}`, err);
  }
  return fd;
}

/** Creates a connected pair of non-blocking UNIX stream sockets. */
export function socketPair(): [number, number] {
  const sv = new Int32Array(2);
  check(
    "socketpair",
    libc.socketpair(
      C.AF_UNIX,
      C.SOCK_STREAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC,
      0,
      new Uint8Array(sv.buffer),
    ),
  );
  return [sv[0], sv[1]];
}

/** Accepts one pending connection as a non-blocking fd, or returns -1 when none is pending. */
export function acceptUnix(lfd: number): number {
  const fd = retry(() => libc.accept4(lfd, null, null, C.SOCK_NONBLOCK | C.SOCK_CLOEXEC));
  if (fd < 0) {
    const err = errno();
    if (err === Errno.EAGAIN) return -1;
    throw new SysError("accept4", err);
  }
  return fd;
}

function sockOptInt(fd: number, opt: number): number {
  const val = new Int32Array(1);
  const len = new Uint32Array([4]);
  check(
    "getsockopt",
    libc.getsockopt(
      fd,
      C.SOL_SOCKET,
      opt,
      new Uint8Array(val.buffer),
      new Uint8Array(len.buffer),
    ),
  );
  return val[0];
}

/** What an inherited fd is: a listening or a connected stream socket (else it throws). */
export function socketKind(fd: number): "listening" | "connected" {
  const type = sockOptInt(fd, C.SO_TYPE);
  if (type !== C.SOCK_STREAM) throw new Error(`fd ${fd} is not a stream socket`);
  return sockOptInt(fd, C.SO_ACCEPTCONN) ? "listening" : "connected";
}

/** Sets O_NONBLOCK (and FD_CLOEXEC) on an inherited socket we own. */
export function makeNonBlocking(fd: number): void {
  const F_GETFL = 3, F_SETFL = 4, O_NONBLOCK = 0o4000;
  const fl = check("fcntl", libc.fcntl(fd, F_GETFL, 0));
  check("fcntl", libc.fcntl(fd, F_SETFL, fl | O_NONBLOCK));
  check("fcntl", libc.fcntl(fd, C.F_SETFD, C.FD_CLOEXEC));
}

/** Result of one {@link Messenger.recv}. */
export interface RecvResult {
  /** Bytes received; 0 means the peer closed the connection, -1 nothing available. */
  n: number;
  /** File descriptors that arrived with the bytes (now owned by the caller). */
  fds: number[];
  /** True when the kernel dropped fds for lack of control-buffer room (MSG_CTRUNC). */
  truncated: boolean;
}

/**
 * Reusable sendmsg/recvmsg state for one socket: the msghdr, iovec and control buffers are
 * allocated once (they are on every message's path) and kept referenced while in use.
 */
export class Messenger {
  readonly fd: number;
  #hdr = new Uint8Array(MSGHDR_SIZE);
  #hdrView = new DataView(this.#hdr.buffer);
  #iov = new Uint8Array(IOVEC_SIZE * 8);
  #iovView = new DataView(this.#iov.buffer);
  #ctl = new Uint8Array(cmsgSpace(4 * SCM_MAX_FD));
  #ctlView = new DataView(this.#ctl.buffer);
  #iovAddr = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.#iov)));
  #ctlAddr = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.#ctl)));

  constructor(fd: number) {
    this.fd = fd;
  }

  /**
   * Sends the concatenation of `bufs` (at most 8) with `fds` attached to the first byte.
   * Returns the bytes sent (possibly fewer than asked), or -1 when the socket is full.
   * Throws `SysError` on a broken connection.
   */
  send(bufs: readonly Uint8Array[], fds: readonly number[] = []): number {
    if (bufs.length > 8) throw new Error("too many iovecs");
    fillIovec(this.#iovView, bufs);
    const h = this.#hdrView;
    h.setBigUint64(0, 0n, true);
    h.setUint32(8, 0, true);
    h.setBigUint64(16, this.#iovAddr, true);
    h.setBigUint64(24, BigInt(bufs.length), true);
    if (fds.length > 0) {
      const len = CMSG_HDR + 4 * fds.length;
      this.#ctlView.setBigUint64(0, BigInt(len), true);
      this.#ctlView.setInt32(8, C.SOL_SOCKET, true);
      this.#ctlView.setInt32(12, C.SCM_RIGHTS, true);
      fds.forEach((fd, i) => this.#ctlView.setInt32(CMSG_HDR + 4 * i, fd, true));
      h.setBigUint64(32, this.#ctlAddr, true);
      h.setBigUint64(40, BigInt(cmsgSpace(4 * fds.length)), true);
    } else {
      h.setBigUint64(32, 0n, true);
      h.setBigUint64(40, 0n, true);
    }
    h.setInt32(48, 0, true);
    const r = retry(() => libc.sendmsg(this.fd, this.#hdr, C.MSG_DONTWAIT | C.MSG_NOSIGNAL));
    if (r < 0) {
      const err = errno();
      if (err === Errno.EAGAIN) return -1;
      throw new SysError("sendmsg", err);
    }
    return Number(r);
  }

  /** Receives into `buf`, collecting any passed fds. Never blocks. */
  recv(buf: Uint8Array): RecvResult {
    fillIovec(this.#iovView, [buf]);
    const h = this.#hdrView;
    h.setBigUint64(0, 0n, true);
    h.setUint32(8, 0, true);
    h.setBigUint64(16, this.#iovAddr, true);
    h.setBigUint64(24, 1n, true);
    h.setBigUint64(32, this.#ctlAddr, true);
    h.setBigUint64(40, BigInt(this.#ctl.length), true);
    h.setInt32(48, 0, true);
    const r = retry(() => libc.recvmsg(this.fd, this.#hdr, C.MSG_DONTWAIT | C.MSG_CMSG_CLOEXEC));
    if (r < 0) {
      const err = errno();
      if (err === Errno.EAGAIN) return { n: -1, fds: [], truncated: false };
      throw new SysError("recvmsg", err);
    }
    const fds = this.#parseControl();
    const truncated = (h.getInt32(48, true) & C.MSG_CTRUNC) !== 0;
    return { n: Number(r), fds, truncated };
  }

  #parseControl(): number[] {
    const fds: number[] = [];
    const total = Number(this.#hdrView.getBigUint64(40, true));
    let off = 0;
    while (off + CMSG_HDR <= total) {
      const len = Number(this.#ctlView.getBigUint64(off, true));
      if (len < CMSG_HDR || off + len > total) break;
      const level = this.#ctlView.getInt32(off + 8, true);
      const type = this.#ctlView.getInt32(off + 12, true);
      if (level === C.SOL_SOCKET && type === C.SCM_RIGHTS) {
        for (let p = off + CMSG_HDR; p + 4 <= off + len; p += 4) {
          fds.push(this.#ctlView.getInt32(p, true));
        }
      }
      off += (len + 7) & ~7;
    }
    return fds;
  }
}

// ---------------------------------------------------------------------------------------------
// Backend program conventions: socket file mode, stale sockets, inherited fds, sd_notify.

const SOCK_DGRAM = 2;
const SO_DOMAIN = 39;

/**
 * sockaddr_un of a filesystem path or, with a leading "@", of a Linux abstract socket name
 * (sun_path[0] = NUL, no terminator: the address length delimits the name, as systemd does).
 */
function sockaddrUnAny(address: string): { sa: Uint8Array; len: number } {
  const abstract = address.startsWith("@");
  const name = new TextEncoder().encode(abstract ? address.slice(1) : address);
  if (name.length === 0 || name.length + 1 > SUN_PATH_MAX) {
    throw new Error(`socket address "${address}" is empty or too long (${name.length} bytes)`);
  }
  const sa = new Uint8Array(2 + SUN_PATH_MAX);
  new DataView(sa.buffer).setUint16(0, C.AF_UNIX, true);
  sa.set(name, abstract ? 3 : 2);
  return { sa, len: abstract ? 3 + name.length : 2 + name.length + 1 };
}

/** Ownership and mode a socket file gets between bind and listen. */
export interface SocketFileAccess {
  /** File mode, e.g. 0o600. */
  mode?: number;
  /** Group of the socket file (the owner stays vfud's user), with its name for errors. */
  group?: { gid: number; name: string };
}

/**
 * Creates a non-blocking listening socket bound to `path` (which must not exist). The path only
 * appears once the socket listens, with its final group and mode (`access`): the socket is bound
 * to a temporary name in the same directory, gets its group and mode, listens, and is then
 * hard-linked to `path` (link() never replaces an existing file) and the temporary name removed.
 * So a supervisor or VMM that connects as soon as the file exists is never refused. When the
 * temporary name would not fit in sun_path, the socket is bound to `path` directly (group and
 * mode still set before listen). Every file it made is removed again when anything fails.
 * Errors name `path`.
 */
export function listenUnix(path: string, access: SocketFileAccess = {}, backlog = 16): number {
  const fd = newSocket();
  const tmp = temporaryName(path);
  const bindPath = tmp ?? path;
  let bound = false;
  try {
    const sa = sockaddrUn(bindPath);
    if (libc.bind(fd, sa, sa.length) < 0) throw new SysError(`bind ${path}`, errno());
    bound = true;
    if (access.group) chgrpPath(bindPath, access.group.gid, access.group.name, path);
    if (access.mode !== undefined) chmodPath(bindPath, access.mode, path);
    if (libc.listen(fd, backlog) < 0) throw new SysError(`listen ${path}`, errno());
    if (tmp !== undefined) {
      linkPath(tmp, path);
      unlinkPath(tmp);
    }
    return fd;
  } catch (e) {
    closeFd(fd);
    if (bound) {
      try {
        unlinkPath(bindPath);
      } catch { /* the first error is the one to report */ }
    }
    throw e;
  }
}

/** A fresh name beside `path` that fits in sun_path, or undefined when none does. */
function temporaryName(path: string): string | undefined {
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  const name = `${tempPrefix(path)}${rand}~`;
  return new TextEncoder().encode(name).length < SUN_PATH_MAX ? name : undefined;
}

function tempPrefix(path: string): string {
  const slash = path.lastIndexOf("/");
  return `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.`;
}

/**
 * True when `name`, a socket's bound address (/proc/net/unix, `ss -x`), is that of a socket
 * {@link listenUnix} made visible at `path`: `path` itself, or its temporary name.
 */
export function isBoundNameOf(name: string, path: string): boolean {
  return name === path || (name.startsWith(tempPrefix(path)) && name.endsWith("~"));
}

/**
 * Makes `path` free for a new listening socket: nothing there is fine; a UNIX socket that
 * refuses connections (Errno.ECONNREFUSED: its server is gone) is removed; anything else is refused
 * with an error: a file that is not a socket, a socket someone accepts on, or one whose state
 * cannot be told (EACCES, or EAGAIN from a live server with a full backlog).
 */
export function claimSocketPath(path: string): void {
  const info = lstatPath(path);
  if (info === undefined) return;
  if (info.type !== "socket") {
    throw new Error(`${path} exists and is not a socket: refusing to replace it`);
  }
  let fd: number;
  try {
    fd = connectUnix(path);
  } catch (e) {
    const err = e instanceof SysError ? e.errno : -1;
    if (err === Errno.ENOENT) return;
    if (err === Errno.ECONNREFUSED) {
      unlinkPath(path);
      return;
    }
    throw new Error(`${path}: cannot tell whether the socket is in use (${(e as Error).message})`);
  }
  closeFd(fd);
  throw new Error(`${path} is in use by another server`);
}

/** The path a UNIX socket fd is bound to ("@name" for an abstract one), or "" if unbound. */
export function socketName(fd: number): string {
  const sa = new Uint8Array(2 + SUN_PATH_MAX);
  const len = new Uint32Array([sa.length]);
  check("getsockname", libc.getsockname(fd, sa, new Uint8Array(len.buffer)));
  const name = sa.subarray(2, Math.min(len[0], sa.length));
  if (name.length === 0) return "";
  if (name[0] === 0) return `@${new TextDecoder().decode(name.subarray(1))}`;
  const end = name.indexOf(0);
  return new TextDecoder().decode(end < 0 ? name : name.subarray(0, end));
}

/** The address family (SO_DOMAIN) of a socket fd, e.g. 1 for AF_UNIX; throws for non-sockets. */
export function socketFamily(fd: number): number {
  return sockOptInt(fd, SO_DOMAIN);
}

/**
 * Sends one datagram to the AF_UNIX datagram socket at `address` (a path, or "@name" for the
 * abstract namespace) from a fresh unbound socket: the sd_notify wire protocol.
 */
export function sendDatagram(address: string, data: Uint8Array): void {
  const { sa, len } = sockaddrUnAny(address);
  const fd = check("socket", libc.socket(C.AF_UNIX, SOCK_DGRAM | C.SOCK_CLOEXEC, 0));
  try {
    const r = retry(() => libc.sendto(fd, data, BigInt(data.length), C.MSG_NOSIGNAL, sa, len));
    if (r < 0) throw new SysError(`sendto ${address}`, errno());
  } finally {
    closeFd(fd);
  }
}

/** A non-blocking AF_UNIX datagram socket bound to `address` (path or "@abstract"). */
export function bindDatagram(address: string): number {
  const { sa, len } = sockaddrUnAny(address);
  const fd = check(
    "socket",
    libc.socket(C.AF_UNIX, SOCK_DGRAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0),
  );
  if (libc.bind(fd, sa, len) < 0) {
    const err = errno();
    closeFd(fd);
    throw new SysError(`bind ${address}`, err);
  }
  return fd;
}

/** Receives one datagram into `buf` from a non-blocking socket: its length, or -1 if none. */
export function recvDatagram(fd: number, buf: Uint8Array): number {
  const r = retry(() => libc.read(fd, buf, BigInt(buf.length)));
  if (r < 0) {
    const err = errno();
    if (err === Errno.EAGAIN) return -1;
    throw new SysError("read", err);
  }
  return Number(r);
}

/** A non-blocking, unbound AF_UNIX datagram socket for {@link trySendDatagram}. */
export function openDatagramSocket(): number {
  return check(
    "socket",
    libc.socket(C.AF_UNIX, SOCK_DGRAM | C.SOCK_NONBLOCK | C.SOCK_CLOEXEC, 0),
  );
}

/**
 * Sends one datagram from `fd` to `address` without blocking: 0 when it went, else the errno
 * (EAGAIN when the receiver's queue is full, ENOENT/ECONNREFUSED when nobody listens there).
 */
export function trySendDatagram(fd: number, address: string, data: Uint8Array): number {
  const { sa, len } = sockaddrUnAny(address);
  const r = retry(() => libc.sendto(fd, data, BigInt(data.length), C.MSG_NOSIGNAL, sa, len));
  return r < 0 ? errno() : 0;
}

/** The peer of a connected UNIX socket (SO_PEERCRED), as the kernel recorded it at connect. */
export function peerCredentials(fd: number): { pid: number; uid: number; gid: number } {
  const SO_PEERCRED = 17;
  const cred = new Uint8Array(12);
  const len = new Uint32Array([12]);
  check(
    "getsockopt SO_PEERCRED",
    libc.getsockopt(fd, C.SOL_SOCKET, SO_PEERCRED, cred, new Uint8Array(len.buffer)),
  );
  const v = new DataView(cred.buffer);
  return { pid: v.getInt32(0, true), uid: v.getUint32(4, true), gid: v.getUint32(8, true) };
}
