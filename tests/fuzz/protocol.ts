/**
 * Session fuzzing: structure-aware and mutated messages (messages.ts) against a whole vfud
 * session, over the real UNIX socket of a vfud process or in-process over an in-memory transport
 * (a Server in this process on one end of a memory wire: no socket, no process boundary).
 * A case is one client connection: VERSION (valid or fuzzed, capability values at and past their
 * bounds), sometimes DMA maps and a virtio queue whose DMA requests the client holds back while
 * it pipelines commands (commands during DMA waits, replies served late and out of order), then
 * batches of generated messages with fds on the right and the wrong commands. Every batch ends
 * with a DEVICE_GET_INFO that must be answered within the deadline (a hang otherwise) after every
 * reply that was due; after each case a fresh valid client must be served. A crash (the process
 * exits) or a hang is recorded with the seed and case, and the target restarted.
 *
 * @module
 */
import {
  ArrayRam,
  ClientClosedError,
  GuestArena,
  MemfdRam,
  VfioUserClient,
  virtioBlk,
  VirtioBlkDriver,
} from "../../client/mod.ts";
import { Command, Flags } from "../../protocol/header.ts";
import { concatBytes } from "../../protocol/wire.ts";
import { check, closeFd, cstr, libc } from "../../sys/ffi.ts";
import { C } from "../../sys/layout.ts";
import { connectUnix } from "../../sys/socket.ts";
import { memoryWirePair, type MessageWire } from "../../transport/wire.ts";
import { EventLoop } from "../../sys/event_loop.ts";
import { DeviceHost } from "../../server/host.ts";
import { DEFAULT_SESSION_OPTIONS, Server } from "../../server/server.ts";
import { parseDeviceArg } from "../../devices/mod.ts";
import { quiesce } from "../../devices/device.ts";
import { logger } from "../../sys/log.ts";
import { startVfud, type Vfud, waitNoSession } from "../integration/helpers.ts";
import { type FdKind, type FuzzContext, type FuzzMessage, generate } from "./messages.ts";
import { Rng } from "./rng.ts";

/** Counters of a run. */
export interface ProtocolStats {
  messages: number;
  /** Messages with fds attached. */
  withFds: number;
  repliesDue: number;
  replies: number;
  errorReplies: number;
  /** Cases the server ended (framing broken on purpose, runaway client...): fine. */
  serverClosed: number;
  cases: number;
  versionRefused: number;
  /** Cases with DMA requests held back while commands flowed. */
  dmaHeldCases: number;
  dmaHeld: number;
  /** Largest data count of a successful REGION_READ / REGION_WRITE reply. */
  maxReadCount: number;
  maxWriteCount: number;
  crashes: number;
  hangs: number;
  /** Replies due that never came although the session went on (must stay 0). */
  lost: number;
  failures: string[];
}

/** Where the fuzzed server runs. */
export interface Target {
  readonly name: string;
  /** A connection to the server (socket fd or in-memory wire), once it has no other client. */
  connect(): Promise<number | MessageWire>;
  /** False once the server process died (socket target). */
  alive(): boolean;
  /** What the server logged (its end, after a crash). */
  log(): string;
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** vfud as a process on a real socket. */
export async function socketTarget(): Promise<Target> {
  let v: Vfud = await startVfud({ imageSize: 4 << 20 });
  return {
    name: "socket",
    async connect() {
      await waitNoSession(v);
      return connectUnix(v.socketPath);
    },
    alive: () => !v.exited,
    log: () => v.log().split("\n").slice(-40).join("\n"),
    async restart() {
      await v[Symbol.asyncDispose]();
      v = await startVfud({ imageSize: 4 << 20 });
    },
    async close() {
      await v[Symbol.asyncDispose]();
    },
  };
}

/**
 * A Server in this process, each client on a fresh in-memory wire (transport/wire.ts): no
 * kernel socket, no process boundary, nothing to restart but objects.
 */
export async function inprocTarget(): Promise<Target> {
  const dir = await Deno.makeTempDir({ prefix: "vfud-fuzz-" });
  const image = `${dir}/disk.img`;
  await Deno.writeFile(image, new Uint8Array(4 << 20));
  const make = () => {
    const loop = new EventLoop();
    const { type, options } = parseDeviceArg(`virtio-blk,file=${image}`);
    const device = type.create(options, { loop });
    const host = new DeviceHost(loop, device, 16 << 20);
    const server = new Server(loop, host, DEFAULT_SESSION_OPTIONS, logger("fuzz"));
    const running = loop.run();
    return { loop, device, server, running };
  };
  let s = make();
  return {
    name: "inproc",
    async connect() {
      const deadline = Date.now() + 20_000;
      while (s.server.session) {
        if (Date.now() > deadline) throw new Error("previous session never ended");
        await new Promise((r) => setTimeout(r, 1));
      }
      const [ours, theirs] = memoryWirePair();
      s.server.serveConnected(ours);
      return theirs;
    },
    alive: () => true,
    log: () => "",
    async restart() {
      s.server.stop();
      s.loop.stop();
      await s.running;
      s = make();
    },
    async close() {
      s.server.stop();
      s.loop.stop();
      await s.running;
      await quiesce(s.device);
      s.device.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Region sizes of the virtio-blk function (index → size), read once by a clean client. */
async function regionSizes(target: Target): Promise<number[]> {
  const c = new VfioUserClient(await target.connect(), { timeoutMs: 20_000 });
  try {
    await c.version();
    const info = await c.getInfo();
    const sizes: number[] = [];
    for (let i = 0; i < info.numRegions; i++) sizes.push(Number((await c.getRegionInfo(i)).size));
    return sizes;
  } finally {
    await c.close();
  }
}

/** An fd of `kind` for a fuzzed message (the caller closes it after sending). */
export function makeFd(kind: FdKind): number {
  switch (kind) {
    case "eventfd":
      return check("eventfd", libc.eventfd(0, C.EFD_CLOEXEC | C.EFD_NONBLOCK));
    case "pipe": {
      // An eventfd without EFD_NONBLOCK stands in for "an fd of the wrong kind / blocking".
      return check("eventfd", libc.eventfd(0, C.EFD_CLOEXEC));
    }
    case "memfd":
    case "memfd-small": {
      const fd = check("memfd_create", libc.memfd_create(cstr("fuzz"), C.MFD_CLOEXEC));
      check("ftruncate", libc.ftruncate(fd, kind === "memfd" ? 1n << 20n : 4096n));
      return fd;
    }
  }
}

/** Options of {@link fuzzProtocol}. */
export interface ProtocolFuzzOptions {
  seed: number;
  /** Messages to send in total. */
  messages: number;
  target: Target;
  /** Called with progress (watchdog heartbeat). */
  beat?: (what: string) => void;
  /** Deadline of each batch's answer, ms. */
  deadlineMs?: number;
  /** Stops at the first crash or hang instead of restarting the target. */
  stopOnFailure?: boolean;
  /** Runs only this case of the seed's sequence (to replay a failure). */
  onlyCase?: number;
  /**
   * Called for each message whose outcome (command and errno, or the connection ending) was not
   * seen before in this run: the material of the corpus.
   */
  interesting?: (m: FuzzMessage, outcome: string) => void;
}

/** Runs the session fuzzer; resolves with its counters. */
export async function fuzzProtocol(opts: ProtocolFuzzOptions): Promise<ProtocolStats> {
  const stats: ProtocolStats = {
    messages: 0,
    withFds: 0,
    repliesDue: 0,
    replies: 0,
    errorReplies: 0,
    serverClosed: 0,
    cases: 0,
    versionRefused: 0,
    dmaHeldCases: 0,
    dmaHeld: 0,
    maxReadCount: 0,
    maxWriteCount: 0,
    crashes: 0,
    hangs: 0,
    lost: 0,
    failures: [],
  };
  const r = new Rng(opts.seed);
  const sizes = await regionSizes(opts.target);
  if (opts.onlyCase !== undefined) {
    for (let i = 0; i < opts.onlyCase; i++) r.fork();
    stats.cases = opts.onlyCase;
  }
  while (stats.messages < opts.messages) {
    if (opts.onlyCase !== undefined && stats.cases > opts.onlyCase) break;
    const caseNo = stats.cases++;
    const what = `seed ${opts.seed} case ${caseNo}`;
    opts.beat?.(what);
    let outcome: "ok" | "crash" | "hang";
    try {
      outcome = await runCase(r.fork(), opts, stats, sizes, caseNo);
    } catch (e) {
      outcome = opts.target.alive() ? "hang" : "crash";
      stats.failures.push(`${what}: ${(e as Error).message}`);
    }
    if (outcome === "ok" && !opts.target.alive()) outcome = "crash";
    if (outcome === "ok") {
      try {
        await freshClient(opts.target, opts.deadlineMs ?? 20_000);
      } catch (e) {
        outcome = opts.target.alive() ? "hang" : "crash";
        stats.failures.push(`${what}: fresh client not served: ${(e as Error).message}`);
      }
    }
    if (outcome !== "ok") {
      stats[outcome === "crash" ? "crashes" : "hangs"]++;
      stats.failures.push(`${what}: ${outcome}\n${opts.target.log()}`);
      if (opts.stopOnFailure) break;
      await opts.target.restart();
    }
  }
  return stats;
}

/** A brand-new client: VERSION, GET_INFO, the vendor id. */
async function freshClient(target: Target, ms: number): Promise<void> {
  const c = new VfioUserClient(await target.connect(), { timeoutMs: ms });
  try {
    await c.version();
    await c.getInfo();
    const vendor = await c.regionRead(7, 0, 2);
    if (vendor[0] !== 0xf4 || vendor[1] !== 0x1a) throw new Error("wrong vendor id");
  } finally {
    await c.close();
  }
}

async function runCase(
  r: Rng,
  opts: ProtocolFuzzOptions,
  stats: ProtocolStats,
  sizes: number[],
  caseNo: number,
): Promise<"ok"> {
  const deadline = opts.deadlineMs ?? 20_000;
  const c = new VfioUserClient(await opts.target.connect(), {
    timeoutMs: deadline,
    maxMessageSize: 8 << 20,
  });
  const rams: { close(): void }[] = [];
  let driver: VirtioBlkDriver | undefined;
  try {
    return await caseBody(r, opts, stats, sizes, caseNo, c, rams, (d) => driver = d);
  } catch (e) {
    // The server ended the session (a framing error, a twin socket the fuzzed client dropped, a
    // runaway queue...): legitimate; whether the daemon is still fine is checked next.
    if (c.isClosed) {
      stats.serverClosed++;
      return "ok";
    }
    throw e;
  } finally {
    driver?.close();
    await c.close();
    for (const ram of rams) ram.close();
  }
}

async function caseBody(
  r: Rng,
  opts: ProtocolFuzzOptions,
  stats: ProtocolStats,
  sizes: number[],
  caseNo: number,
  c: VfioUserClient,
  rams: { close(): void }[],
  setDriver: (d: VirtioBlkDriver) => void,
): Promise<"ok"> {
  const deadline = opts.deadlineMs ?? 20_000;
  let driver: VirtioBlkDriver | undefined;
  {
    const ctx: FuzzContext = {
      maxXfer: 1 << 20,
      maxFds: 16,
      regionSizes: sizes,
      msixVectors: 3,
      maps: [],
    };
    if (r.chance(0.1)) {
      // A fuzzed VERSION: refused (the client goes) or accepted with whatever it settled.
      const m = generateVersion(r, ctx, c.nextId());
      stats.messages++;
      try {
        await c.rawRequest(m.bytes);
      } catch (e) {
        if (e instanceof ClientClosedError || (e as Error).name === "VfioUserRequestError") {
          stats.versionRefused++;
          return "ok";
        }
        throw e;
      }
    } else {
      await c.version();
    }
    stats.messages++;
    if (r.chance(0.5)) {
      const ram = new MemfdRam(1 << 20);
      rams.push(ram);
      await c.dmaMap({ iova: 0n, size: 1n << 20n, fd: ram.fd, backing: ram.bytes });
      ctx.maps.push({ iova: 0n, size: 1n << 20n });
      stats.messages++;
    }
    if (r.chance(0.3)) {
      // A queue on message-based memory whose DMA requests the client holds back meanwhile.
      const ram = new ArrayRam(1 << 20);
      await c.dmaMap({ iova: 0x100000n, size: 1n << 20n, backing: ram.bytes });
      ctx.maps.push({ iova: 0x100000n, size: 1n << 20n });
      driver = await VirtioBlkDriver.create(c, { arena: new GuestArena(0x100000n, ram.bytes) });
      setDriver(driver);
      stats.messages += 20; // the set-up's own commands, roughly
      c.serveDma = false;
      for (let i = r.int(4) + 1; i > 0; i--) {
        driver.enqueue({
          type: r.pick([virtioBlk.ReqType.IN, virtioBlk.ReqType.OUT]),
          sector: BigInt(r.int(64)),
          readLength: 4096,
          data: new Uint8Array(4096),
        });
      }
      await driver.kick();
      stats.dmaHeldCases++;
    }
    const total = r.pick([20, 100, 500, 1000, 3000]);
    for (let sent = 0; sent < total && stats.messages < opts.messages;) {
      opts.beat?.(`seed ${opts.seed} case ${caseNo} message ${sent}`);
      const batch = Math.min(r.pick([1, 8, 64, 256]), total - sent);
      const sentById = new Map<number, FuzzMessage>();
      const due: number[] = [];
      let plain: Uint8Array[] = [];
      const flush = async () => {
        if (!plain.length) return;
        await c.sendRaw(concatBytes(plain));
        plain = [];
      };
      let broke = false;
      for (let i = 0; i < batch; i++) {
        const m = generate(r, ctx, c.nextId());
        sentById.set(m.bytes[0] | (m.bytes[1] << 8), m);
        stats.messages++;
        sent++;
        if (m.wantsReply) due.push(m.bytes[0] | (m.bytes[1] << 8));
        if (m.fds.length) {
          await flush();
          const fds = m.fds.map(makeFd);
          stats.withFds++;
          try {
            await c.sendRaw(m.bytes, fds);
          } finally {
            fds.forEach(closeFd);
          }
        } else {
          plain.push(m.bytes);
        }
        if (m.breaksStream) {
          broke = true;
          break;
        }
      }
      await flush();
      if (broke) {
        stats.serverClosed++;
        const last = [...sentById.values()].pop()!;
        note(opts, last, `framing ${last.cmd}`);
        return "ok";
      }
      if (c.heldDma().length) {
        stats.dmaHeld += c.heldDma().length;
        if (r.chance(0.5)) c.serveHeldDma(); // late and in between commands
      }
      // The batch is answered: every reply due, then our own GET_INFO, within the deadline.
      try {
        await c.getInfo({ timeoutMs: deadline });
      } catch (e) {
        if (e instanceof ClientClosedError) {
          stats.serverClosed++;
          const last = [...sentById.values()].pop();
          if (last) note(opts, last, `closed after ${last.cmd}`);
          return "ok";
        }
        throw e;
      }
      stats.repliesDue += due.length;
      const replied = new Set<number>();
      for (const m of c.unsolicited) {
        if ((m.header.flags & Flags.TYPE_MASK) !== Flags.TYPE_REPLY) continue;
        replied.add(m.header.id);
        stats.replies++;
        const sentMsg = sentById.get(m.header.id);
        if (sentMsg && sentMsg.cmd === m.header.cmd) {
          note(
            opts,
            sentMsg,
            `${m.header.cmd}:${m.header.flags & Flags.ERROR ? m.header.error : "ok"}`,
          );
        }
        if (m.header.flags & Flags.ERROR) stats.errorReplies++;
        else if (m.header.cmd === Command.REGION_READ) {
          stats.maxReadCount = Math.max(stats.maxReadCount, m.payload.length - 16);
        } else if (m.header.cmd === Command.REGION_WRITE && m.payload.length >= 16) {
          const count = new DataView(m.payload.buffer, m.payload.byteOffset).getUint32(12, true);
          stats.maxWriteCount = Math.max(stats.maxWriteCount, count);
        }
      }
      c.unsolicited.splice(0).forEach((m) => m.fds.forEach(closeFd));
      sentById.clear();
      const missing = due.filter((id) => !replied.has(id));
      if (missing.length) {
        stats.lost += missing.length;
        throw new Error(`no reply to ${missing.length} commands (ids ${missing.slice(0, 5)})`);
      }
    }
    c.serveDma = true;
    c.serveHeldDma();
    if (r.chance(0.2)) return "ok"; // leave with whatever is in flight
    await c.getInfo({ timeoutMs: deadline }).catch((e) => {
      if (!(e instanceof ClientClosedError)) throw e;
    });
    return "ok";
  }
}

const seen = new Set<string>();

function note(opts: ProtocolFuzzOptions, m: FuzzMessage, outcome: string): void {
  if (!opts.interesting || seen.has(outcome)) return;
  seen.add(outcome);
  opts.interesting(m, outcome);
}

function generateVersion(r: Rng, ctx: FuzzContext, id: number): FuzzMessage {
  for (;;) {
    const m = generate(r, ctx, id);
    if (m.cmd === Command.VERSION && m.wantsReply) return m;
  }
}
