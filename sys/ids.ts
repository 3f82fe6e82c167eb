/**
 * Users and groups through libc's name service (getgrnam_r and friends, so /etc/group, LDAP
 * and systemd's userdb all answer), and the identity vfud runs as: for `--socket-group` and for
 * errors that explain why a file could not be opened.
 *
 * @module
 */
import { Errno } from "./errno.ts";
import { cstr, libc, SysError } from "./ffi.ts";
import { lstatPath } from "./files.ts";

/** sizeof(struct group), sizeof(struct passwd) on x86_64 glibc. */
const GROUP_SIZE = 32, PASSWD_SIZE = 48;

type Lookup = (entry: Uint8Array, buf: Uint8Array, result: Uint8Array) => number;

/** Runs a get*_r call, growing its string buffer on ERANGE; the entry, or undefined. */
function lookup(size: number, call: Lookup, what: string): DataView | undefined {
  for (let len = 1024; len <= 1 << 20; len *= 4) {
    const entry = new Uint8Array(size), buf = new Uint8Array(len), result = new Uint8Array(8);
    const r = call(entry, buf, result);
    if (r === Errno.ERANGE) continue;
    // Not found is a NULL result with 0 (or, from some NSS modules, ENOENT and friends).
    if (new DataView(result.buffer).getBigUint64(0, true) === 0n) {
      if (r === 0 || r === Errno.ENOENT) return undefined;
      throw new SysError(`looking up ${what}`, r);
    }
    // Keep the string buffer alive as long as the view: the entry's pointers point into it.
    const view = new DataView(entry.buffer);
    keep.set(view, buf);
    return view;
  }
  throw new SysError(`looking up ${what}`, Errno.ERANGE);
}
const keep = new WeakMap<DataView, Uint8Array>();

function cString(view: DataView, offset: number): string {
  const p = Deno.UnsafePointer.create(view.getBigUint64(offset, true));
  return p === null ? "" : Deno.UnsafePointerView.getCString(p);
}

/** The gid of a group given by name or number, or undefined when there is no such group. */
export function groupId(group: string): number | undefined {
  if (/^\d+$/.test(group)) {
    const gid = Number(group);
    return gid < 0xffffffff ? gid : undefined;
  }
  const g = lookup(
    GROUP_SIZE,
    (e, b, r) => libc.getgrnam_r(cstr(group), e, b, BigInt(b.length), r),
    `group ${group}`,
  );
  return g?.getUint32(16, true);
}

/** The name of group `gid`, or undefined. */
export function groupName(gid: number): string | undefined {
  const g = lookup(
    GROUP_SIZE,
    (e, b, r) => libc.getgrgid_r(gid, e, b, BigInt(b.length), r),
    `gid ${gid}`,
  );
  return g && cString(g, 0);
}

/** The name of user `uid`, or undefined. */
export function userName(uid: number): string | undefined {
  const p = lookup(
    PASSWD_SIZE,
    (e, b, r) => libc.getpwuid_r(uid, e, b, BigInt(b.length), r),
    `uid ${uid}`,
  );
  return p && cString(p, 0);
}

/** "998(vfud)" or "998" when the id has no name. */
export function describeId(id: number, kind: "user" | "group"): string {
  let name: string | undefined;
  try {
    name = kind === "user" ? userName(id) : groupName(id);
  } catch { /* a broken name service only costs the name */ }
  return name === undefined ? String(id) : `${id}(${name})`;
}

/** The effective uid and gid of this process. */
export function processIds(): { uid: number; gid: number } {
  return { uid: libc.geteuid(), gid: libc.getegid() };
}

/**
 * Why `path` may be out of reach for this process, for a "Permission denied" message: who vfud
 * runs as and who owns the file (or, when it is missing, its directory), e.g.
 * "vfud runs as uid 998(vfud) gid 998(vfud); /var/lib/vfud/a.img is owned by 0(root):0(root),
 * mode 0644". Empty when even that cannot be told.
 */
export function accessHint(path: string): string {
  const me = processIds();
  const who = `vfud runs as uid ${describeId(me.uid, "user")} gid ${describeId(me.gid, "group")}`;
  try {
    let target = path;
    let st = lstatPath(path);
    if (st === undefined) {
      target = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
      st = lstatPath(target);
    }
    if (st === undefined) return who;
    const owner = `${describeId(st.uid, "user")}:${describeId(st.gid, "group")}`;
    return `${who}; ${target} is owned by ${owner}, mode 0${st.mode.toString(8)}`;
  } catch {
    return who;
  }
}
