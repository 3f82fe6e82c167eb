/**
 * Reading /proc through libc. Deno 2 wants `--allow-all` for any /proc access, while the
 * project's test task grants `--allow-ffi --allow-read --allow-write --allow-env --allow-run`;
 * FFI reaches the same files with the permissions tests already have.
 *
 * @module
 */
import { closeFd, cstr, libc } from "../sys/ffi.ts";
import { C } from "../sys/layout.ts";
import { isBoundNameOf } from "../sys/socket.ts";

const extra = Deno.dlopen(
  "libc.so.6",
  {
    /** ssize_t readlink(const char *path, char *buf, size_t bufsiz); */
    readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
    /** DIR *opendir(const char *name); */
    opendir: { parameters: ["buffer"], result: "pointer" },
    /** struct dirent *readdir(DIR *dirp); */
    readdir: { parameters: ["pointer"], result: "pointer" },
    /** int closedir(DIR *dirp); */
    closedir: { parameters: ["pointer"], result: "i32" },
  } as const,
).symbols;

/** Offset of d_name in glibc's x86_64 struct dirent (d_ino 8, d_off 8, d_reclen 2, d_type 1). */
const D_NAME = 19;

/** Names in a directory (without "." and ".."), or undefined when it cannot be opened. */
export function listDir(path: string): string[] | undefined {
  const dir = extra.opendir(cstr(path));
  if (dir === null) return undefined;
  try {
    const names: string[] = [];
    for (;;) {
      const ent = extra.readdir(dir);
      if (ent === null) break;
      const name = new Deno.UnsafePointerView(ent).getCString(D_NAME);
      if (name !== "." && name !== "..") names.push(name);
    }
    return names;
  } finally {
    extra.closedir(dir);
  }
}

/** The whole text of a (/proc) file, or undefined when it cannot be opened. */
export function readProcFile(path: string): string | undefined {
  const fd = libc.open(cstr(path), C.O_RDONLY | C.O_CLOEXEC, 0);
  if (fd < 0) return undefined;
  try {
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = Number(libc.read(fd, buf, BigInt(buf.length)));
      if (n <= 0) break;
      chunks.push(buf.slice(0, n));
    }
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let off = 0;
    for (const c of chunks) {
      out.set(c, off);
      off += c.length;
    }
    return new TextDecoder().decode(out);
  } finally {
    closeFd(fd);
  }
}

/** The target of a symbolic link, or undefined when there is none. */
export function readLink(path: string): string | undefined {
  const buf = new Uint8Array(4096);
  const n = Number(extra.readlink(cstr(path), buf, BigInt(buf.length)));
  return n < 0 ? undefined : new TextDecoder().decode(buf.subarray(0, n));
}

/** Open fds of process `pid` ("self" for this one) with their /proc link targets. */
export function openFds(pid: number | "self"): { fd: number; target: string }[] {
  const out: { fd: number; target: string }[] = [];
  for (const name of listDir(`/proc/${pid}/fd`) ?? []) {
    const target = readLink(`/proc/${pid}/fd/${name}`);
    if (target !== undefined) out.push({ fd: Number(name), target });
  }
  return out.sort((a, b) => a.fd - b.fd);
}

/**
 * True when a socket at `path` is listening (/proc/net/unix flag __SO_ACCEPTCON). vfud makes its
 * file visible only once it listens, but other servers bind at the path first (a connect before
 * their listen() is refused), so waits use this. `table` defaults to this namespace's table.
 */
export function isListening(path: string, table?: string): boolean {
  if (!unixSockets(table).some((s) => s.listening && isBoundNameOf(s.path, path))) return false;
  if (table !== undefined) return true;
  // A socket listening under its temporary name is not yet linked at `path` (sys/socket.ts
  // listenUnix): a connect in between would find no file.
  try {
    return Deno.lstatSync(path).isSocket === true;
  } catch {
    return false;
  }
}

/** One row of /proc/net/unix. */
export interface UnixSocketRow {
  /** Bound address ("" for unbound ones). */
  path: string;
  listening: boolean;
  /** Socket inode (matches the `socket:[N]` links in /proc/PID/fd). */
  inode: number;
}

/** The rows of /proc/net/unix (or of `table`, that file's text). */
export function unixSockets(table?: string): UnixSocketRow[] {
  const out: UnixSocketRow[] = [];
  for (const line of (table ?? readProcFile("/proc/net/unix") ?? "").split("\n").slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path
    const f = line.trim().split(/\s+/);
    if (f.length < 7) continue;
    out.push({
      path: f.slice(7).join(" "),
      listening: (parseInt(f[3], 16) & 0x10000) !== 0,
      inode: Number(f[6]),
    });
  }
  return out;
}
