/**
 * Path operations through libc (statx, chmod, lchown, unlink) for the files vfud creates or
 * inspects itself: its socket, the log stream. They name the path in every error, and they do
 * not go through Deno's file system permissions, which refuse some paths outright (anything
 * under /proc asks for --allow-all) where the kernel's answer is the one a user needs.
 *
 * @module
 */
import { Errno } from "./errno.ts";
import { cstr, errno, libc, retry, SysError } from "./ffi.ts";

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_EMPTY_PATH = 0x1000;
const STATX_BASIC_STATS = 0x7ff;
/** sizeof(struct statx). */
const STATX_SIZE = 256;
/** O_RDONLY | O_CLOEXEC. */
const O_RDONLY_CLOEXEC = 0o2000000;

const S_IFMT = 0o170000;
const TYPES: Record<number, FileStat["type"]> = {
  0o140000: "socket",
  0o120000: "symlink",
  0o100000: "file",
  0o060000: "block",
  0o040000: "directory",
  0o020000: "char",
  0o010000: "fifo",
};

/** What statx says about a file. */
export interface FileStat {
  type: "socket" | "symlink" | "file" | "block" | "directory" | "char" | "fifo" | "other";
  /** Permission bits (and setuid/setgid/sticky). */
  mode: number;
  uid: number;
  gid: number;
  size: bigint;
  ino: bigint;
  /** st_dev as glibc encodes a dev_t (makedev), e.g. for JOURNAL_STREAM. */
  dev: bigint;
}

/** glibc's makedev(3). */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major), mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) |
    (mi & 0xffn);
}

function decode(buf: Uint8Array): FileStat {
  const v = new DataView(buf.buffer);
  const mode = v.getUint16(28, true);
  return {
    type: TYPES[mode & S_IFMT] ?? "other",
    mode: mode & 0o7777,
    uid: v.getUint32(20, true),
    gid: v.getUint32(24, true),
    ino: v.getBigUint64(32, true),
    size: v.getBigUint64(40, true),
    dev: makedev(v.getUint32(136, true), v.getUint32(140, true)),
  };
}

/** lstat(2) of `path`, or undefined when nothing is there (ENOENT). */
export function lstatPath(path: string): FileStat | undefined {
  const buf = new Uint8Array(STATX_SIZE);
  const r = libc.statx(AT_FDCWD, cstr(path), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, buf);
  if (r < 0) {
    const err = errno();
    if (err === Errno.ENOENT) return undefined;
    throw new SysError(`stat ${path}`, err);
  }
  return decode(buf);
}

/** fstat(2) of an open fd. */
export function fstatFd(fd: number): FileStat {
  const buf = new Uint8Array(STATX_SIZE);
  if (libc.statx(fd, cstr(""), AT_EMPTY_PATH, STATX_BASIC_STATS, buf) < 0) {
    throw new SysError(`fstat fd ${fd}`, errno());
  }
  return decode(buf);
}

/** chmod(2), the error naming `shown` (the path a user knows, by default `path`). */
export function chmodPath(path: string, mode: number, shown = path): void {
  if (retry(() => libc.chmod(cstr(path), mode)) < 0) {
    throw new SysError(`chmod ${shown} to 0${mode.toString(8)}`, errno());
  }
}

/** lchown(2) to group `gid` (the owner stays), the error naming `shown` and the group. */
export function chgrpPath(path: string, gid: number, groupText = String(gid), shown = path): void {
  if (retry(() => libc.lchown(cstr(path), 0xffffffff, gid)) < 0) {
    throw new SysError(`chgrp ${groupText} ${shown}`, errno());
  }
}

/** link(2): a second name `to` for `from` (never replaces an existing `to`). */
export function linkPath(from: string, to: string): void {
  if (retry(() => libc.link(cstr(from), cstr(to))) < 0) {
    throw new SysError(`link ${to}`, errno());
  }
}

/** unlink(2); false when nothing was there, errors naming `path`. */
export function unlinkPath(path: string): boolean {
  if (libc.unlink(cstr(path)) < 0) {
    const err = errno();
    if (err === Errno.ENOENT) return false;
    throw new SysError(`unlink ${path}`, err);
  }
  return true;
}

/**
 * The start of a small file (at most `max` bytes) read with libc, e.g. /proc/PID/comm; undefined
 * when it cannot be read. Synchronous: only for pseudo-files that never block.
 */
export function readSmallFile(path: string, max = 4096): string | undefined {
  const fd = libc.open(cstr(path), O_RDONLY_CLOEXEC, 0);
  if (fd < 0) return undefined;
  try {
    const buf = new Uint8Array(max);
    const n = retry(() => libc.read(fd, buf, BigInt(max)));
    return n < 0 ? undefined : new TextDecoder().decode(buf.subarray(0, Number(n)));
  } finally {
    libc.close(fd);
  }
}
