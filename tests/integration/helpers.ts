/**
 * Shared helpers of the integration tests: temporary directories, disk images, a vfud
 * subprocess on a real UNIX socket, client sessions set up the way QEMU does, and fd counting
 * in /proc. Everything is cleaned up by `await using`, and every wait is bounded.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  ArrayRam,
  ClientClosedError,
  type ClientOptions,
  GuestArena,
  type GuestRam,
  type InterruptMode,
  isListening,
  MemfdRam,
  openFds,
  pollUntil,
  randomBytes,
  sleep,
  unixSockets,
  VfioUserClient,
  VirtioBlkDriver,
  type VirtioBlkDriverOptions,
  WaitTimeoutError,
} from "../../client/mod.ts";
import { isBoundNameOf } from "../../sys/socket.ts";

import { spawnLogged, VFUD } from "../vfud.ts";
import { DEVICE_TABLE } from "../../devices/mod.ts";

export { MAIN_TS, REPO_ROOT } from "../vfud.ts";

/** Bound of the wait for vfud to create its socket (type-free start is ~0.1 s; be generous). */
const START_TIMEOUT_MS = 30_000;
/** Bound of the wait for vfud to exit after SIGTERM before it is killed. */
const STOP_TIMEOUT_MS = 15_000;

/** A temporary directory removed at scope end. */
export interface TempDir extends AsyncDisposable {
  readonly path: string;
}

/** Creates a temporary directory. */
export async function tempDir(prefix = "vfud-it-"): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

/** Writes a disk image of `size` bytes (random contents unless `contents` is given). */
export async function createImage(
  path: string,
  size: number,
  contents?: Uint8Array,
): Promise<Uint8Array> {
  const data = contents ?? randomBytes(size);
  assert.equal(data.length, size);
  await Deno.writeFile(path, data);
  return data;
}

/** Options of {@link startVfud}. */
export interface VfudOptions {
  /** Image size when the helper creates the image. Default 8 MiB. */
  imageSize?: number;
  /** Use this existing image instead of creating one. */
  image?: string;
  readonly?: boolean;
  serial?: string;
  /** Log level passed to vfud. Default "warning" (errors still reach the captured log). */
  logLevel?: string;
  /**
   * Another device: a whole `--device` spec, `{dir}` standing for the temporary directory
   * (e.g. "e1000,netdev=stream,path={dir}/net.sock"). No image is created then.
   */
  device?: string;
}

/** A running vfud process. */
export interface Vfud extends AsyncDisposable {
  readonly pid: number;
  readonly socketPath: string;
  readonly dir: string;
  readonly image: string;
  /** The image contents the helper wrote (undefined for a caller-provided image). */
  readonly initialImage: Uint8Array | undefined;
  readonly child: Deno.ChildProcess;
  /** Resolves with the exit status. */
  readonly status: Promise<Deno.CommandStatus>;
  /** True once the process exited. */
  readonly exited: boolean;
  /** What vfud wrote to stderr and stdout so far. */
  log(): string;
  /** Sends `signal` and waits (bounded; SIGKILL after that) for the exit status. */
  stop(signal?: Deno.Signal): Promise<Deno.CommandStatus>;
}

/**
 * Starts vfud serving a virtio-blk disk on a socket in a fresh temporary directory, and waits
 * until the socket exists. The directory (image, socket) is removed on dispose.
 */
export async function startVfud(opts: VfudOptions = {}): Promise<Vfud> {
  const dir = await tempDir();
  try {
    const socketPath = `${dir.path}/vfud.sock`;
    let image = opts.image;
    let initialImage: Uint8Array | undefined;
    if (image === undefined) {
      image = `${dir.path}/disk.img`;
      initialImage = await createImage(image, opts.imageSize ?? 8 << 20);
    }
    let device = `virtio-blk,file=${image}`;
    if (opts.readonly) device += ",readonly=on";
    if (opts.serial !== undefined) device += `,serial=${opts.serial}`;
    if (opts.device !== undefined) device = opts.device.replaceAll("{dir}", dir.path);
    // a test-only device type (devices/mod.ts) is served where the environment asks for them
    const testOnly = DEVICE_TABLE.find((t) => t.name === device.split(",")[0])?.testOnly;
    const proc = spawnLogged([
      ...VFUD,
      `--socket-path=${socketPath}`,
      "--device",
      device,
      `--log-level=${opts.logLevel ?? "warning"}`,
    ], { env: testOnly ? { VFUD_TEST_DEVICES: "1" } : {} });
    const stop = (signal: Deno.Signal = "SIGTERM") => proc.stop(signal, STOP_TIMEOUT_MS);
    const vfud: Vfud = {
      pid: proc.child.pid,
      socketPath,
      dir: dir.path,
      image,
      initialImage,
      child: proc.child,
      status: proc.status,
      get exited() {
        return proc.exited;
      },
      log: proc.output,
      stop,
      async [Symbol.asyncDispose]() {
        await stop("SIGTERM");
        await dir[Symbol.asyncDispose]();
      },
    };
    try {
      await waitForSocket(vfud);
    } catch (e) {
      await vfud[Symbol.asyncDispose]();
      throw e;
    }
    return vfud;
  } catch (e) {
    await dir[Symbol.asyncDispose]();
    throw e;
  }
}

async function waitForSocket(v: Vfud): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let delay = 5;
  while (Date.now() < deadline) {
    if (v.exited) throw new Error(`vfud exited before creating its socket:\n${v.log()}`);
    // Listening, not merely bound: a connect between bind() and listen() would be refused.
    if (isListening(v.socketPath)) return;
    await sleep(delay);
    delay = Math.min(delay * 2, 100);
  }
  throw new Error(`vfud did not create ${v.socketPath} within ${START_TIMEOUT_MS} ms:\n${v.log()}`);
}

/**
 * Connects a client and (unless `version: false`) negotiates VERSION with QEMU's caps. vfud
 * serves one client at a time and may still be tearing down the previous one when we connect:
 * a connection it refuses is closed at once, so a closed connection before the VERSION reply is
 * retried (bounded).
 */
export async function connect(
  v: Vfud,
  opts: ClientOptions & { version?: boolean } = {},
): Promise<VfioUserClient> {
  await waitNoSession(v);
  for (let attempt = 0;; attempt++) {
    const client = await VfioUserClient.connect(v.socketPath, { timeoutMs: 20_000, ...opts });
    if (opts.version === false) return client;
    try {
      await client.version();
      return client;
    } catch (e) {
      await client.close();
      if (!(e instanceof ClientClosedError) || attempt >= 50) throw e;
      await sleep(Math.min(10 * (attempt + 1), 100));
    }
  }
}

/**
 * Server-side sockets of `v`'s listener other than the listener itself (accepted sessions and
 * connections waiting to be accepted), from /proc/net/unix: they carry the bound path.
 */
export function sessionSockets(v: Vfud): number {
  return unixSockets().filter((s) => !s.listening && isBoundNameOf(s.path, v.socketPath)).length;
}

/**
 * Waits (bounded) until vfud has no client: the previous client's teardown is done, so the next
 * connection is accepted instead of being turned away (vfud serves one client at a time).
 */
export async function waitNoSession(v: Vfud, timeoutMs = 20_000): Promise<void> {
  await pollUntil(
    () => (sessionSockets(v) === 0 || v.exited ? true : undefined),
    "vfud idle",
    timeoutMs,
  );
}

/**
 * Proves the daemon still serves a brand-new client: connects (after the previous client's
 * teardown), negotiates, reads the vendor id, disconnects.
 */
export async function assertServesFreshClient(v: Vfud): Promise<void> {
  assert.ok(!v.exited, `vfud exited:\n${v.log()}`);
  await using c = await connect(v);
  const info = await c.getInfo();
  assert.ok(info.numRegions >= 9);
  const vendor = await c.regionRead(7, 0, 2);
  assert.deepEqual(vendor, Uint8Array.of(0xf4, 0x1a));
  assert.deepEqual(c.violations, []);
}

/** Fds of process `pid` whose /proc link matches `pattern` (all fds without one). */
export function countFds(pid: number, pattern?: RegExp): number {
  return openFds(pid).filter((f) => !pattern || pattern.test(f.target)).length;
}

/** Matches eventfd links in /proc/<pid>/fd. */
export const EVENTFD_LINK = /^anon_inode:\[eventfd\]$/;
/** Matches memfd links in /proc/<pid>/fd. */
export const MEMFD_LINK = /^\/memfd:/;

/** A client with guest RAM mapped and a virtio-blk driver on top. */
export interface BlkSession extends AsyncDisposable {
  client: VfioUserClient;
  ram: GuestRam;
  driver: VirtioBlkDriver;
}

/** Options of {@link openBlkSession}. */
export interface BlkSessionOptions {
  /** "memfd": RAM passed by fd (zero-copy); "array": message-based (DMA_READ/DMA_WRITE). */
  ram?: "memfd" | "array";
  /** Guest RAM size; default 16 MiB. */
  ramSize?: number;
  interrupts?: InterruptMode;
  driver?: Partial<VirtioBlkDriverOptions>;
  client?: ClientOptions;
}

/**
 * Connects, negotiates, maps guest RAM at IOVA 0 (memfd with its fd, or plain memory without)
 * and brings the virtio-blk function up with the test driver.
 */
export async function openBlkSession(v: Vfud, opts: BlkSessionOptions = {}): Promise<BlkSession> {
  const size = opts.ramSize ?? 16 << 20;
  const ram: GuestRam = opts.ram === "array" ? new ArrayRam(size) : new MemfdRam(size);
  let client: VfioUserClient | undefined;
  let driver: VirtioBlkDriver | undefined;
  try {
    client = await connect(v, opts.client);
    await client.mapRam(ram);
    driver = await VirtioBlkDriver.create(client, {
      arena: new GuestArena(0n, ram.bytes),
      interrupts: opts.interrupts ?? "msix",
      ...opts.driver,
    });
  } catch (e) {
    await client?.close();
    ram.close();
    throw e;
  }
  const c = client, d = driver;
  return {
    client: c,
    ram,
    driver: d,
    async [Symbol.asyncDispose]() {
      await c.close();
      d.close();
      ram.close();
    },
  };
}

/** Reads `len` bytes of the image file at `offset`. */
export async function readImage(path: string, offset: number, len: number): Promise<Uint8Array> {
  using f = await Deno.open(path, { read: true });
  await f.seek(offset, Deno.SeekMode.Start);
  const out = new Uint8Array(len);
  let got = 0;
  while (got < len) {
    const n = await f.read(out.subarray(got));
    if (n === null) break;
    got += n;
  }
  return out.subarray(0, got);
}

/** Asserts that `p` rejects with an error carrying `errno` (VfioUserRequestError and friends). */
export async function assertErrno(p: Promise<unknown>, errno: number, what = ""): Promise<void> {
  const e = await p.then(() => undefined, (e) => e);
  assert.ok(e !== undefined, `${what}: expected errno ${errno}, but it succeeded`);
  assert.ok(
    !(e instanceof WaitTimeoutError),
    `${what}: timed out instead of failing with ${errno}`,
  );
  assert.equal((e as { errno?: number }).errno, errno, `${what}: ${e}`);
}

/** Asserts that `p` rejects with some error reply (any errno), not a timeout or disconnect. */
export async function assertErrorReply(p: Promise<unknown>, what = ""): Promise<number> {
  const e = await p.then(() => undefined, (e) => e);
  assert.ok(e !== undefined, `${what}: expected an error reply, but it succeeded`);
  assert.equal((e as Error).name, "VfioUserRequestError", `${what}: ${e}`);
  return (e as { errno: number }).errno;
}
