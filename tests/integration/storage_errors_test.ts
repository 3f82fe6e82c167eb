/**
 * Backing storage that fails: ENOSPC from a full tmpfs under the image, and EIO from a loop
 * device whose own backing file sits on a full tmpfs (the loop driver turns the failed writeback
 * into EIO; device-mapper is not available here). Both reach the guest as VIRTIO_BLK_S_IOERR;
 * vfud keeps serving, reads keep working and the next client is served. vfud runs in a private
 * mount namespace (unshare -m) with the tmpfs mounted there, so nothing leaks into the host's
 * mounts; the loop device is detached at the end.
 */
import assert from "node:assert/strict";
import {
  GuestArena,
  isListening,
  MemfdRam,
  pollUntil,
  sleep,
  unixSockets,
  VfioUserClient,
  virtioBlk,
  VirtioBlkDriver,
} from "../../client/mod.ts";
import { isBoundNameOf } from "../../sys/socket.ts";
import { tempDir } from "./helpers.ts";
import { spawnLogged, VFUD } from "../vfud.ts";

const MiB = 1 << 20;

/** vfud in its own mount namespace on a 1 MiB tmpfs, serving `image` (made by `prepare`). */
async function startOnFullStorage(kind: "file" | "loop") {
  const dir = await tempDir("vfud-enospc-");
  const mnt = `${dir.path}/mnt`;
  const socket = `${dir.path}/vfud.sock`;
  await Deno.mkdir(mnt);
  const vfud = [
    ...VFUD,
    `--socket-path=${socket}`,
    "--log-level=warning",
  ].map((a) => `'${a}'`)
    .join(" ");
  // An 8 MiB sparse file on a 1 MiB tmpfs: the first MiB or so of writes find room, then none.
  const script = kind === "file"
    ? `set -e; mount -t tmpfs -o size=1M vfud-test ${mnt}; truncate -s 8M ${mnt}/disk.img
       exec ${vfud} --device virtio-blk,file=${mnt}/disk.img`
    : `set -e; mount -t tmpfs -o size=1M vfud-test ${mnt}; truncate -s 8M ${mnt}/back.img
       L=$(losetup --find --show ${mnt}/back.img); echo "loop $L" >&2
       set +e; ${vfud} --device virtio-blk,file=$L; rc=$?; losetup -d $L; exit $rc`;
  const proc = spawnLogged(["unshare", "-m", "--propagation", "private", "sh", "-c", script]);
  const child = proc.child;
  const deadline = Date.now() + 30_000;
  while (!isListening(socket)) {
    if (proc.exited || Date.now() > deadline) {
      await proc.stop("SIGKILL", 0);
      throw new Error(`vfud did not start on full storage:\n${proc.output()}`);
    }
    await sleep(20);
  }
  /** vfud's pid: the shell execs it ("file") or runs it as its child ("loop"). */
  const vfudPid = () => {
    if (kind === "file") return child.pid;
    const kids = Deno.readTextFileSync(`/proc/${child.pid}/task/${child.pid}/children`).trim();
    return Number(kids.split(/\s+/)[0]);
  };
  return {
    socket,
    log: proc.output,
    alive: () => !proc.exited,
    async [Symbol.asyncDispose]() {
      // vfud itself gets SIGTERM (under "loop" the shell waits for it to detach the device)
      if (!proc.exited) {
        try {
          Deno.kill(vfudPid(), "SIGTERM");
        } catch { /* gone */ }
      }
      const timer = setTimeout(() => proc.stop("SIGKILL", 0), 15_000);
      await proc.status;
      clearTimeout(timer);
      await dir[Symbol.asyncDispose]();
    },
  };
}

/** Waits (bounded) until vfud's log shows `re` (its log lines reach the pipe a little later). */
async function logged(v: { log(): string }, re: RegExp): Promise<void> {
  await pollUntil(() => re.test(v.log()) ? true : undefined, `${re} in vfud's log`, 10_000)
    .catch(() => assert.match(v.log(), re));
}

/** Waits (bounded) until no client socket of `socket` is left on the server side. */
async function noSession(socket: string): Promise<void> {
  await pollUntil(
    () =>
      unixSockets().some((s) => !s.listening && isBoundNameOf(s.path, socket)) ? undefined : true,
    "the previous session to end",
  );
}

/** Writes 3 MiB in 64 KiB requests to distinct places; returns the statuses. */
async function fillDisk(drv: VirtioBlkDriver): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < 48; i++) {
    const data = new Uint8Array(64 * 1024).fill(i + 1);
    const c = await drv.submit({ type: virtioBlk.ReqType.OUT, sector: BigInt(i * 128), data });
    statuses.push(c.status);
  }
  return statuses;
}

/**
 * A client of the vfud on full storage with 4 MiB of guest RAM and the virtio-blk driver, runs
 * `body` with the driver, then checks that vfud logged `error`, stays up and serves a fresh client.
 */
async function onFullStorage(
  v: Awaited<ReturnType<typeof startOnFullStorage>>,
  timeoutMs: number,
  error: RegExp,
  body: (drv: VirtioBlkDriver) => Promise<void>,
): Promise<void> {
  using ram = new MemfdRam(4 * MiB);
  {
    await using c = await VfioUserClient.connect(v.socket, { timeoutMs });
    await c.version();
    await c.dmaMap({ iova: 0n, size: BigInt(4 * MiB), fd: ram.fd, backing: ram.bytes });
    using drv = await VirtioBlkDriver.create(c, { arena: new GuestArena(0n, ram.bytes) });
    await body(drv);
  }
  assert.ok(v.alive(), v.log());
  await logged(v, error);
  await noSession(v.socket); // one client at a time: the last one's teardown first
  await using c2 = await VfioUserClient.connect(v.socket, { timeoutMs: 20_000 });
  await c2.version();
  assert.ok((await c2.getInfo()).numRegions >= 9, "a fresh client is served");
}

Deno.test("storage: ENOSPC of the image's filesystem reaches the guest as IOERR; vfud serves on", async () => {
  await using v = await startOnFullStorage("file");
  await onFullStorage(v, 20_000, /No space left on device|ENOSPC|errno 28/, async (drv) => {
    const st = await fillDisk(drv);
    const { OK, IOERR } = virtioBlk.BlkStatus;
    assert.equal(st[0], OK, "the first writes find room");
    assert.ok(st.includes(IOERR), `no write failed: ${st}`);
    assert.deepEqual([...new Set(st)].sort(), [OK, IOERR].sort());
    // Reads of what did land still work, and so does the session.
    const back = await drv.read(0n, 128);
    assert.ok(back.every((b) => b === 1));
  });
});

Deno.test("storage: EIO from a failing loop device reaches the guest as IOERR (FLUSH); vfud serves on", async () => {
  await using v = await startOnFullStorage("loop");
  await onFullStorage(v, 30_000, /Input\/output error|EIO|errno 5\b/, async (drv) => {
    // Writes land in the loop device's page cache; writing them back to its backing file
    // fails (no room), so the FLUSH (fdatasync) reports EIO, or a write already does.
    const st = await fillDisk(drv);
    const flush = await drv.submit({ type: virtioBlk.ReqType.FLUSH });
    const { IOERR } = virtioBlk.BlkStatus;
    assert.ok(
      flush.status === IOERR || st.includes(IOERR),
      `no I/O error reached the guest: writes ${st}, flush ${flush.status}`,
    );
    assert.equal((await drv.read(0n, 8)).length, 4096, "reads still work");
  });
});
