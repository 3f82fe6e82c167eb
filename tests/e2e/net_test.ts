/**
 * End-to-end: vfud's e1000 (Intel 82540EM, PCI 8086:100e) served to QEMU 11.1's real
 * vfio-user-pci client and driven by the guest's unmodified Linux e1000 driver
 * (guest/net-e1000.sh, guest/net-arping.sh).
 *
 *  1. tap backend, shared guest RAM (DMA through mapped memfds): the driver binds, carrier, a
 *     static address, ping of the host end of the cable without loss, then an upload and a
 *     download of TCP_BYTES each over TCP to net_peer.ts; md5 and byte counts agree on the guest,
 *     the peer and the test's own copy of the data; the tap's counters carried the bytes.
 *  2. the same with private guest RAM (every descriptor and buffer through DMA_READ/DMA_WRITE);
 *     here vfud creates the tap itself (the test only configures it once it exists).
 *  3. stream backend (vfud listens) against stream_peer.ts, an in-repo host speaking QEMU's
 *     `-netdev stream` framing: a first peer connects and leaves, a second one answers ARP and
 *     ping, including full-size (1514-byte) frames; no loss and exactly one reply per request.
 *  4. interop with QEMU's own NIC: the guest gets vfud's e1000 and QEMU's in-process e1000,
 *     whose `-netdev stream` connects to vfud's stream socket; ARP probes go from each NIC to the
 *     other and are answered from the right MAC.
 *
 * Every test runs vfud (and the TCP peer) inside a network namespace of its own (netns.ts) and
 * uses only private addresses there: nothing reaches the host's interfaces or routes. vfud must
 * exit 0 on SIGTERM and remove its sockets. Work dirs are kept on failure (VFUD_E2E_KEEP=1 keeps
 * them always).
 *
 * Run: deno task test:e2e (needs root: network namespaces and taps; setup.sh on the first run).
 */
import {
  assertGuestOk,
  type GuestRun,
  isListening,
  md5,
  MiB,
  parseKeyValues,
  preparePrerequisites,
  prng,
  runGuest,
  Vfud,
  workDir,
} from "./lib.ts";
import { NetNs, startNetPeer } from "./netns.ts";
import { StreamPeer } from "./stream_peer.ts";

const GUEST_TIMEOUT_S = 200;
/** Bytes moved over TCP in each direction. */
const TCP_BYTES = 8 * MiB;
const SEED = Number(Deno.env.get("VFUD_E2E_SEED") ?? Math.floor(Math.random() * 2 ** 31));
/** Private test addresses, only ever configured inside the tests' own namespaces and guests. */
const HOST_IP = "10.0.2.2";
const GUEST_IP = "10.0.2.15";
const TAP = "vfudtap0";

// ------------------------------------------------------------------------------------------------
// Checks

type Check = [
  what: string,
  got: string | number | boolean | undefined,
  want: string | number | boolean,
];

/** Reports every failed check at once, with context. */
function expectAll(what: string, checks: Check[], context: string): void {
  const bad = checks.filter(([, got, want]) => String(got) !== String(want))
    .map(([name, got, want]) => `  ${name}: got ${got ?? "(missing)"}, want ${want}`);
  if (bad.length) {
    throw new Error(
      `${what}: ${bad.length} check(s) failed (seed ${SEED}):\n${bad.join("\n")}${context}`,
    );
  }
}

function guestOutput(run: GuestRun): string {
  return `\n--- guest (run-guest.sh stdout) ---\n${run.stdout}\n--- run-guest.sh stderr ---\n${run.stderr}`;
}

/** "tx 31 frames (0 TSO), rx 24 frames, 0 missed, ..." from vfud's log at close. */
async function vfudTotals(v: Vfud): Promise<Record<string, number>> {
  const log = await Deno.readTextFile(v.logs.stderr);
  const m = log.match(
    /e1000 totals: tx (\d+) frames \((\d+) TSO\), rx (\d+) frames, (\d+) missed, (\d+) waited for descriptors, (\d+) oversize/,
  );
  if (!m) throw new Error(`no "e1000 totals" line in vfud's log${await v.describe()}`);
  const [tx, tso, rx, missed, nobuf, oversize] = m.slice(1).map(Number);
  return { tx, tso, rx, missed, nobuf, oversize };
}

/** Warnings, errors and fatal lines of vfud's log. */
async function vfudComplaints(v: Vfud): Promise<string[]> {
  const log = await Deno.readTextFile(v.logs.stderr);
  return log.split("\n").filter((l) => /\[(WRN|ERR|FTL)\]/.test(l));
}

/** Bounded wait until vfud's UNIX socket at `path` listens (in vfud's namespace). */
async function waitListening(path: string, v: Vfud, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await isListening(path, v.child.pid))) {
    if (!v.running) throw new Error(`vfud exited before listening on ${path}`);
    if (Date.now() > deadline) throw new Error(`${path} does not listen after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/** RX/TX byte and packet counters of an interface in `ns` (iproute2 JSON). */
async function linkStats(ns: NetNs, ifname: string) {
  const out = await ns.exec(["ip", "-s", "-j", "link", "show", "dev", ifname]);
  const s = JSON.parse(out)[0].stats64;
  return {
    rxBytes: s.rx.bytes,
    rxPackets: s.rx.packets,
    txBytes: s.tx.bytes,
    txPackets: s.tx.packets,
  };
}

async function linkExists(ns: NetNs, ifname: string): Promise<boolean> {
  const out = await ns.exec(["ip", "-j", "link", "show"]);
  return (JSON.parse(out) as { ifname: string }[]).some((l) => l.ifname === ifname);
}

// ------------------------------------------------------------------------------------------------
// Scaffold: work dir, namespace, vfud inside it, cleanup on every path

interface NetEnv {
  /** The test's work dir (logs, sockets, data). */
  dir: string;
  /** The test's own network namespace. */
  ns: NetNs;
  /** Starts vfud inside `ns` with this `--device` spec (stopped or killed at the end). */
  startVfud(device: string): Promise<Vfud>;
  /** Registers a cleanup step; they run in reverse order, on success and on failure. */
  defer(step: () => Promise<unknown>): void;
}

/**
 * A test with its work dir and network namespace. On failure vfud gets SIGTERM first (it writes
 * its buffered log lines out when it stops) and the error carries the tail of its log; the work
 * dir is kept. Cleanup (peers, vfud, interfaces, namespace) runs on every path.
 */
function netTest(name: string, tag: string, body: (env: NetEnv) => Promise<void>): void {
  Deno.test(name, async () => {
    await preparePrerequisites();
    const wd = await workDir(tag);
    const steps: (() => Promise<unknown>)[] = [];
    let vfud: Vfud | undefined;
    let ok = false;
    try {
      const ns = await NetNs.create(tag);
      steps.push(() => ns.close());
      await body({
        dir: wd.path,
        ns,
        defer: (step) => steps.push(step),
        startVfud: async (device) => {
          if (vfud) throw new Error("one vfud per test");
          vfud = await Vfud.start({ dir: wd.path, device, wrap: ns.wrap });
          const v = vfud;
          steps.push(() => v.kill());
          return v;
        },
      });
      ok = true;
    } catch (e) {
      let logs = "";
      if (vfud) {
        await vfud.stop(5_000).catch(() => {});
        logs = await vfud.describe();
      }
      if (e instanceof Error) e.message += logs;
      throw e;
    } finally {
      for (const step of steps.reverse()) {
        await step().catch((e) => console.error(`[e2e] ${tag}: cleanup: ${e}`));
      }
      await wd.done(ok);
    }
  });
}

// ------------------------------------------------------------------------------------------------
// (1), (2): tap backend

function tapTest(mem: "shared" | "private", tapBy: "test" | "vfud"): void {
  const name = `e1000 tap backend (${mem} guest RAM, tap made by ${tapBy}): driver binds, ` +
    `address, ping without loss, ${TCP_BYTES / MiB} MiB TCP each way with md5, clean shutdown`;
  netTest(name, `net-tap-${mem}`, async ({ dir, ns, startVfud, defer }) => {
    const configureTap = async () => {
      await ns.exec(["ip", "addr", "add", `${HOST_IP}/24`, "dev", TAP]);
      await ns.exec(["ip", "link", "set", TAP, "up"]);
    };
    defer(() => ns.exec(["ip", "link", "del", TAP]).catch(() => {}));
    if (tapBy === "test") {
      // a persistent tap, as a management layer would prepare it
      await ns.exec(["ip", "tuntap", "add", "dev", TAP, "mode", "tap"]);
      await configureTap();
    }
    const v = await startVfud(`e1000,netdev=tap,ifname=${TAP}`);
    if (tapBy === "vfud") {
      if (!(await linkExists(ns, TAP))) throw new Error(`vfud did not create ${TAP}`);
      await configureTap();
    }

    const up = prng(SEED, TCP_BYTES), down = prng(SEED + 1, TCP_BYTES);
    const upFile = `${dir}/up.bin`, downFile = `${dir}/down.bin`;
    await Deno.writeFile(upFile, up);
    await Deno.writeFile(downFile, down);
    const peer = await startNetPeer(ns, {
      host: HOST_IP,
      upBytes: TCP_BYTES,
      downFile,
      timeoutS: GUEST_TIMEOUT_S + 30,
      log: `${dir}/peer.log`,
    });
    defer(() => peer.kill());

    const run = await runGuest({
      vfu: [v.socket],
      mem,
      script: "guest/net-e1000.sh",
      files: [upFile],
      env: { PEER_IP: HOST_IP, GUEST_IP, TCP: 1 },
      timeoutS: GUEST_TIMEOUT_S,
      log: `${dir}/guest.log`,
    });
    const peerOutput = () => `\n--- peer (${peer.log}) ---\n${peer.output}`;
    assertGuestOk(run, "tap", peerOutput());
    const { timedOut } = await peer.wait(20_000);
    const pr = parseKeyValues(peer.output.split("\n").filter((l) => l.startsWith("PEER ")));
    const tap = await linkStats(ns, TAP);
    await v.assertAlive();
    const r = run.results;
    expectAll("tap", [
      ["guest: PCI id of the NIC", r.e1000_id, "0x8086:0x100e"],
      ["guest: driver bound", r.e1000_driver, "e1000"],
      ["guest: carrier", r.carrier, 1],
      ["guest: address", r.guest_addr, `${GUEST_IP}/24`],
      ["guest: pings answered", `${r.ping_rx}/${r.ping_tx}`, "5/5"],
      ["guest: ping loss %", r.ping_loss, 0],
      ["guest: upload size", r.up_bytes_guest, TCP_BYTES],
      ["guest: upload md5", r.up_md5_guest, md5(up)],
      ["guest: download size", r.down_bytes_guest, TCP_BYTES],
      ["guest: download md5", r.down_md5_guest, md5(down)],
      ["guest: rx errors", r.if_rx_errors, 0],
      ["guest: tx errors", r.if_tx_errors, 0],
      ["guest: script done", r.net, "ok"],
      ["peer: finished in time", timedOut, false],
      ["peer: status", pr.status, "ok"],
      ["peer: upload from", pr.up_from, GUEST_IP],
      ["peer: upload bytes received", pr.up_bytes, TCP_BYTES],
      ["peer: upload md5", pr.up_md5_host, md5(up)],
      ["peer: download bytes sent", pr.down_bytes_sent, TCP_BYTES],
      ["peer: download md5", pr.down_md5_host, md5(down)],
      // the transfers went through this tap: it received the upload and sent the download
      ["tap: rx bytes >= upload", tap.rxBytes >= TCP_BYTES, true],
      ["tap: tx bytes >= download", tap.txBytes >= TCP_BYTES, true],
    ], guestOutput(run) + peerOutput());

    await v.stop(); // exit 0 on SIGTERM, socket removed
    const t = await vfudTotals(v);
    expectAll("vfud", [
      // a bulk TCP upload from Linux' e1000 driver uses TCP segmentation offload
      ["TSO contexts used", t.tso > 0, true],
      ["frames received for the guest", t.rx > 0, true],
      // a guest slow to refill its ring holds the tap unread (backpressure) instead of dropping
      ["frames missed (MPC)", t.missed, 0],
      ["oversize frames", t.oversize, 0],
      ["warnings/errors in its log", (await vfudComplaints(v)).join("\n"), ""],
      // a persistent tap outlives vfud; one that vfud created lives as long as vfud's fd
      [`${TAP} exists after vfud stopped`, await linkExists(ns, TAP), tapBy === "test"],
    ], await v.describe());
    console.error(
      `[e2e] tap ${mem}: upload ${r.up_MBps} MB/s, download ${r.down_MBps} MB/s, ping rtt ` +
        `${r.ping_rtt} ms; vfud tx ${t.tx} (${t.tso} TSO) rx ${t.rx} missed ${t.missed}`,
    );
  });
}

tapTest("shared", "test");
tapTest("private", "vfud");

// ------------------------------------------------------------------------------------------------
// (3): stream backend against the in-repo peer

netTest(
  "e1000 stream backend (vfud listens) with an in-repo QEMU-framing peer: peer reconnect, ARP, " +
    "ping and 1514-byte frames both ways",
  "net-stream",
  async ({ dir, startVfud, defer }) => {
    const MAC = "02:00:00:00:0a:02";
    const BURST = 20, BURST_SIZE = 1472; // 1472 + 8 ICMP + 20 IP + 14 Ethernet = 1514
    const netSock = `${dir}/net.sock`;
    const v = await startVfud(`e1000,netdev=stream,path=${netSock},server=on,mac=${MAC}`);
    await waitListening(netSock, v);
    // a first peer connects and leaves: the server must take the next one
    const first = await StreamPeer.connect(netSock, HOST_IP);
    defer(() => first.close());
    await new Promise((r) => setTimeout(r, 300));
    await first.close();
    const peer = await StreamPeer.connect(netSock, HOST_IP);
    defer(() => peer.close());

    const run = await runGuest({
      vfu: [v.socket],
      mem: "shared",
      script: "guest/net-e1000.sh",
      env: { PEER_IP: HOST_IP, GUEST_IP, EXPECT_MAC: MAC, BURST_COUNT: BURST, BURST_SIZE },
      timeoutS: GUEST_TIMEOUT_S,
      log: `${dir}/guest.log`,
    });
    const s = peer.stats;
    const peerState = () =>
      `\n--- peer: ${JSON.stringify({ ...s, sources: [...s.sources], ended: peer.ended })}`;
    assertGuestOk(run, "stream", peerState());
    const r = run.results;
    expectAll("stream", [
      ["guest: driver bound", r.e1000_driver, "e1000"],
      ["guest: MAC from mac=", r.e1000_mac, MAC],
      ["guest: pings answered", `${r.ping_rx}/${r.ping_tx}`, "5/5"],
      ["guest: ping loss %", r.ping_loss, 0],
      ["guest: 1514-byte pings answered", `${r.burst_rx}/${r.burst_tx}`, `${BURST}/${BURST}`],
      ["guest: rx errors", r.if_rx_errors, 0],
      ["peer: still connected", peer.ended, "undefined"],
      ["peer: frames came from the guest's MAC", [...s.sources].includes(MAC), true],
      ["peer: ARP requests answered >= 1", s.arpReplies >= 1, true],
      // one request per ping, each answered once: no frame lost or duplicated on the cable
      ["peer: echo requests", s.echoReplies, 5 + BURST],
      ["peer: largest frame", s.maxFrame, 14 + 20 + 8 + BURST_SIZE],
    ], guestOutput(run) + peerState());
    await peer.close();
    await v.stop();
    const t = await vfudTotals(v);
    expectAll("vfud", [
      ["stream socket removed", await exists(netSock), false],
      // every frame vfud sent reached the peer (vfud counts a TSO burst per segment)
      ["frames from the guest = frames the peer got", t.tx, s.rxFrames],
      ["frames missed (MPC)", t.missed, 0],
      ["warnings/errors in its log", (await vfudComplaints(v)).join("\n"), ""],
    ], await v.describe());
  },
);

// ------------------------------------------------------------------------------------------------
// (4): interop with QEMU's own -netdev stream

netTest(
  "e1000 stream backend cabled to QEMU's own e1000 (-netdev stream): ARP both ways",
  "net-qemu-stream",
  async ({ dir, startVfud }) => {
    const VFUD_MAC = "02:00:00:00:0a:01", QEMU_MAC = "52:54:00:00:00:99";
    const netSock = `${dir}/net.sock`;
    const v = await startVfud(`e1000,netdev=stream,path=${netSock},server=on,mac=${VFUD_MAC}`);
    await waitListening(netSock, v);
    const run = await runGuest({
      vfu: [v.socket],
      mem: "shared",
      script: "guest/net-arping.sh",
      env: { VFUD_MAC, QEMU_MAC },
      qemuArgs: [
        "-netdev",
        `stream,id=qnet,server=off,addr.type=unix,addr.path=${netSock}`,
        "-device",
        `e1000,netdev=qnet,mac=${QEMU_MAC}`,
      ],
      timeoutS: GUEST_TIMEOUT_S,
      log: `${dir}/guest.log`,
    });
    assertGuestOk(run, "QEMU stream interop");
    const r = run.results;
    expectAll("QEMU stream interop", [
      ["guest: vfud's NIC driver", r.vfud_if_driver, "e1000"],
      ["guest: QEMU's NIC driver", r.qemu_if_driver, "e1000"],
      ["guest: carrier on both", r.carrier, 1],
      [
        "QEMU NIC -> vfud NIC: replies, all from vfud's MAC",
        Number(r.qemu_to_vfud_replies_from_mac) >= 1,
        true,
      ],
      [
        "vfud NIC -> QEMU NIC: replies, all from QEMU's MAC",
        Number(r.vfud_to_qemu_replies_from_mac) >= 1,
        true,
      ],
      ["guest: vfud NIC rx errors", r.vfud_if_rx_errors, 0],
      ["guest: QEMU NIC rx errors", r.qemu_if_rx_errors, 0],
    ], guestOutput(run));
    await v.stop();
    const t = await vfudTotals(v);
    const log = await Deno.readTextFile(v.logs.stderr);
    expectAll("vfud", [
      ["QEMU connected to the stream socket", /peer connected on/.test(log), true],
      ["frames from QEMU's NIC >= 2", t.rx >= 2, true],
      ["frames to QEMU's NIC >= 2", t.tx >= 2, true],
      ["stream socket removed", await exists(netSock), false],
      ["warnings/errors in its log", (await vfudComplaints(v)).join("\n"), ""],
    ], await v.describe());
  },
);
