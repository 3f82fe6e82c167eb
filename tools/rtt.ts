/**
 * Per-message cost of a running vfud: REGION_READ round trips (4 bytes of config space) from a
 * synchronous client that blocks in `epoll_wait` on its socket, so the figures are the server's
 * wake-up and dispatch cost, not the client's. Prints round trips per second, p50/p99 latency and
 * the server's CPU time per message (from /proc/PID/stat), sequential (QD1) and pipelined.
 *
 * Usage: deno run -A tools/rtt.ts [--count=20000] [--depth=16] [--pin] [-- extra vfud options]
 * (starts vfud itself on a scratch image), or `--socket=PATH --pid=PID` for a running one.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Command, decodeHeader, encodeHeader, Flags, SIZE as HDR } from "../protocol/header.ts";
import { RegionRead } from "../protocol/region_rw.ts";
import { encodeVersionPayload, QEMU_CAPS_JSON } from "../client/version.ts";
import { check, closeFd, libc } from "../sys/ffi.ts";
import { C, EPOLL_EVENT_SIZE } from "../sys/layout.ts";
import { connectUnix, Messenger } from "../sys/socket.ts";

/** Results of one measurement. */
export interface RttResult {
  /** Round trips measured. */
  count: number;
  /** Requests in flight at once. */
  depth: number;
  /** Completed requests per second. */
  perSecond: number;
  /** Latency percentiles in µs (QD1: one round trip; deeper: request to its reply). */
  p50us: number;
  p99us: number;
  /** Server CPU (user + system) per message in µs, when its pid is known. */
  serverCpuUs?: number;
}

const CONFIG_REGION = 7;

/** A blocking, allocation-light vfio-user client for latency measurements. */
class SyncClient {
  readonly #fd: number;
  readonly #io: Messenger;
  readonly #ep: number;
  readonly #events = new Uint8Array(EPOLL_EVENT_SIZE * 4);
  readonly #rx = new Uint8Array(1 << 20);
  #rxStart = 0;
  #rxEnd = 0;

  constructor(path: string) {
    this.#fd = connectUnix(path);
    this.#io = new Messenger(this.#fd);
    this.#ep = check("epoll_create1", libc.epoll_create1(C.EPOLL_CLOEXEC));
    const ev = new Uint8Array(EPOLL_EVENT_SIZE);
    const v = new DataView(ev.buffer);
    v.setUint32(0, C.EPOLLIN, true);
    v.setBigUint64(4, BigInt(this.#fd), true);
    check("epoll_ctl", libc.epoll_ctl(this.#ep, C.EPOLL_CTL_ADD, this.#fd, ev));
  }

  send(msg: Uint8Array): void {
    let off = 0;
    while (off < msg.length) {
      const n = this.#io.send([msg.subarray(off)]);
      if (n > 0) off += n;
      else this.#wait(C.EPOLLOUT);
    }
  }

  #wait(_events: number): void {
    const n = libc.epoll_wait(this.#ep, this.#events, 4, 10_000);
    if (n === 0) throw new Error("no reply within 10 s");
  }

  /** Blocks until one whole message arrived; returns its header (payload is skipped). */
  receive(): { id: number; cmd: number; flags: number; error: number } {
    for (;;) {
      if (this.#rxEnd - this.#rxStart >= HDR) {
        const h = decodeHeader(this.#rx.subarray(this.#rxStart, this.#rxStart + HDR));
        if (this.#rxEnd - this.#rxStart >= h.size) {
          this.#rxStart += h.size;
          return h;
        }
      }
      if (this.#rxStart === this.#rxEnd) this.#rxStart = this.#rxEnd = 0;
      else if (this.#rx.length - this.#rxEnd < 65536) {
        this.#rx.copyWithin(0, this.#rxStart, this.#rxEnd);
        this.#rxEnd -= this.#rxStart;
        this.#rxStart = 0;
      }
      const r = this.#io.recv(this.#rx.subarray(this.#rxEnd));
      r.fds.forEach(closeFd);
      if (r.n === 0) throw new Error("server closed the connection");
      if (r.n < 0) this.#wait(C.EPOLLIN);
      else this.#rxEnd += r.n;
    }
  }

  close(): void {
    closeFd(this.#ep);
    closeFd(this.#fd);
  }
}

function message(id: number, cmd: number, payload: Uint8Array): Uint8Array {
  const m = new Uint8Array(HDR + payload.length);
  encodeHeader({ id, cmd, size: m.length, flags: Flags.TYPE_COMMAND, error: 0 }, m);
  m.set(payload, HDR);
  return m;
}

function cpuTicks(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]); // utime + stime (fields 14, 15)
}

const TICK_US = 1e6 / 100; // USER_HZ

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/**
 * Connects, negotiates and measures `count` REGION_READ round trips at each of `depths`, on one
 * connection.
 */
export function measureRtt(
  socket: string,
  opts: { count: number; depths: number[]; pid?: number },
): RttResult[] {
  const c = new SyncClient(socket);
  try {
    c.send(message(0, Command.VERSION, encodeVersionPayload(0, 1, QEMU_CAPS_JSON)));
    const v = c.receive();
    if (v.flags & Flags.ERROR) throw new Error(`VERSION failed: errno ${v.error}`);
    const reqs = Array.from(
      { length: 256 },
      (_, i) =>
        message(
          i + 1,
          Command.REGION_READ,
          RegionRead.encodeRequest({ offset: 0n, region: CONFIG_REGION, count: 4 }),
        ),
    );
    // warm-up (JIT on both sides)
    for (let i = 0; i < 2000; i++) {
      c.send(reqs[0]);
      c.receive();
    }
    return opts.depths.map((depth) => run(c, reqs, { ...opts, depth }));
  } finally {
    c.close();
  }
}

function run(
  c: SyncClient,
  reqs: Uint8Array[],
  opts: { count: number; depth: number; pid?: number },
): RttResult {
  {
    const lat = new Float64Array(opts.count);
    const sent = new Float64Array(256);
    const cpu0 = opts.pid ? cpuTicks(opts.pid) : 0;
    const t0 = performance.now();
    let issued = 0;
    let done = 0;
    while (done < opts.count) {
      while (issued < opts.count && issued - done < opts.depth) {
        const slot = issued % 256;
        sent[slot] = performance.now();
        c.send(reqs[slot]);
        issued++;
      }
      const h = c.receive();
      if (h.flags & Flags.ERROR) throw new Error(`REGION_READ failed: errno ${h.error}`);
      lat[done++] = performance.now() - sent[(h.id - 1) % 256];
    }
    const ms = performance.now() - t0;
    const cpu1 = opts.pid ? cpuTicks(opts.pid) : 0;
    lat.sort();
    return {
      count: opts.count,
      depth: opts.depth,
      perSecond: Math.round(opts.count / (ms / 1000)),
      p50us: Math.round(percentile(lat, 0.5) * 1000 * 10) / 10,
      p99us: Math.round(percentile(lat, 0.99) * 1000 * 10) / 10,
      ...(opts.pid
        ? { serverCpuUs: Math.round((cpu1 - cpu0) * TICK_US / opts.count * 10) / 10 }
        : {}),
    };
  }
}

async function startVfud(dir: string, extra: string[], pin: boolean) {
  const image = `${dir}/rtt.img`;
  Deno.writeFileSync(image, new Uint8Array(0));
  Deno.truncateSync(image, 16 << 20);
  const socket = `${dir}/vfud.sock`;
  const main = new URL("../main.ts", import.meta.url).pathname;
  const args = [
    "run",
    "--allow-ffi",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    main,
    `--socket-path=${socket}`,
    "--device",
    `virtio-blk,file=${image}`,
    "--log-level=warning",
    ...extra,
  ];
  const cmd = pin ? "taskset" : Deno.execPath();
  const child = new Deno.Command(cmd, {
    args: pin ? ["-c", "0", Deno.execPath(), ...args] : args,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      closeFd(connectUnix(socket));
      break;
    } catch {
      if (Date.now() > deadline) throw new Error("vfud did not listen within 30 s");
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  // The probe connection above was a session: wait until vfud accepts the next one.
  await new Promise((r) => setTimeout(r, 300));
  return { child, socket };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      count: { type: "string", default: "20000" },
      depth: { type: "string", default: "16" },
      socket: { type: "string" },
      pid: { type: "string" },
      pin: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
  });
  const count = Number(values.count);
  let socket = values.socket;
  let pid = values.pid ? Number(values.pid) : undefined;
  let child: Deno.ChildProcess | undefined;
  const dir = await Deno.makeTempDir({ prefix: "vfud-rtt-" });
  try {
    if (!socket) {
      const v = await startVfud(dir, positionals, values.pin);
      child = v.child;
      socket = v.socket;
      pid = child.pid;
    }
    if (values.pin) {
      await new Deno.Command("taskset", { args: ["-pc", "0", String(Deno.pid)], stdout: "null" })
        .output();
    }
    const results = measureRtt(socket!, { count, depths: [1, Number(values.depth)], pid });
    if (values.json) console.log(JSON.stringify(results));
    else {
      for (const r of results) {
        console.log(
          `QD${r.depth}: ${r.perSecond} msg/s, p50 ${r.p50us} µs, p99 ${r.p99us} µs` +
            (r.serverCpuUs !== undefined ? `, server CPU ${r.serverCpuUs} µs/msg` : ""),
        );
      }
    }
  } finally {
    if (child) {
      child.kill("SIGTERM");
      await child.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
}
