/**
 * A hostile client that pipelines commands and never reads the replies: vfud stops reading it
 * once its queued replies pass a bound (the kernel's socket buffers then hold the rest), so its
 * memory stays bounded, and every command is still answered once the client reads.
 * Regression: the reply queue grew without limit (~1 GB and beyond).
 */
import assert from "node:assert/strict";
import { Command, encodeHeader, Flags, SIZE as HDR } from "../../protocol/header.ts";
import { RegionRead } from "../../protocol/region_rw.ts";
import { concatBytes } from "../../protocol/wire.ts";
import { closeFd } from "../../sys/ffi.ts";
import { connectUnix, Messenger } from "../../sys/socket.ts";
import { encodeVersionPayload, QEMU_CAPS_JSON, readProcFile, sleep } from "../../client/mod.ts";
import { assertServesFreshClient, startVfud, waitNoSession } from "./helpers.ts";

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readProcFile(`/proc/${pid}/status`) ?? "");
  assert.ok(m, "VmRSS");
  return Number(m[1]);
}

function message(id: number, cmd: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HDR + payload.length);
  encodeHeader({ id, cmd, flags: Flags.TYPE_COMMAND, error: 0, size: out.length }, out);
  out.set(payload, HDR);
  return out;
}

/** Reads whole messages until `n` replies arrived (bounded); returns their ids in order. */
async function readReplies(io: Messenger, n: number, timeoutMs: number): Promise<number[]> {
  const ids: number[] = [];
  let buf = new Uint8Array(1 << 20);
  let have = 0;
  const deadline = Date.now() + timeoutMs;
  while (ids.length < n) {
    if (Date.now() > deadline) throw new Error(`${ids.length} of ${n} replies arrived`);
    if (have === buf.length) {
      const bigger = new Uint8Array(buf.length * 2);
      bigger.set(buf);
      buf = bigger;
    }
    const r = io.recv(buf.subarray(have));
    if (r.n === 0) throw new Error(`connection closed after ${ids.length} replies`);
    if (r.n < 0) {
      await sleep(1);
      continue;
    }
    have += r.n;
    let off = 0;
    while (have - off >= HDR) {
      const v = new DataView(buf.buffer, off);
      const size = v.getUint32(4, true);
      if (have - off < size) break;
      ids.push(v.getUint16(0, true));
      off += size;
    }
    buf.copyWithin(0, off, have);
    have -= off;
  }
  return ids;
}

Deno.test("hostile backlog: 16 KiB REGION_READs never read back keep vfud's memory bounded", async () => {
  await using v = await startVfud();
  await waitNoSession(v);
  const fd = connectUnix(v.socketPath);
  const io = new Messenger(fd);
  try {
    const version = message(1, Command.VERSION, encodeVersionPayload(0, 0, QEMU_CAPS_JSON));
    assert.equal(io.send([version]), version.length);
    assert.deepEqual(await readReplies(io, 1, 20_000), [1]);
    const before = rssKiB(v.pid);
    // 16 KiB reads of the virtio BAR (region 4) as fast as the socket takes them.
    const read = RegionRead.encodeRequest({ offset: 0n, region: 4, count: 16384 });
    const total = 40_000; // 640 MB of replies if nothing pushed back
    let sent = 0, stalls = 0;
    while (sent < total) {
      const batch: Uint8Array[] = [];
      for (let i = 0; i < 256 && sent + i < total; i++) {
        batch.push(message(2 + ((sent + i) % 60000), Command.REGION_READ, read));
      }
      const bytes = concatBytes(batch);
      let off = 0;
      while (off < bytes.length) {
        const n = io.send([bytes.subarray(off)]);
        if (n > 0) {
          off += n;
          stalls = 0;
          continue;
        }
        if (++stalls > 200) break; // 200 ms without room: vfud stopped reading us
        await sleep(1);
      }
      if (off < bytes.length) {
        // Whole messages only: finish the one cut in the middle, count what went out.
        const whole = Math.ceil(off / (HDR + read.length));
        const cut = whole * (HDR + read.length) - off;
        if (cut > 0) await sendAll(io, bytes.subarray(off, off + cut));
        sent += whole;
        break;
      }
      sent += batch.length;
    }
    const grown = rssKiB(v.pid) - before;
    assert.ok(!v.exited, `vfud died:\n${v.log()}`);
    assert.ok(sent < total, `vfud read all ${total} commands (${grown} KiB more RSS)`);
    assert.ok(grown < 64 * 1024, `RSS grew by ${grown} KiB with the client not reading`);
    // Every command sent gets its reply once the client reads.
    const ids = await readReplies(io, sent, 60_000);
    assert.equal(ids.length, sent);
  } finally {
    closeFd(fd);
  }
  await assertServesFreshClient(v);
});

async function sendAll(io: Messenger, bytes: Uint8Array): Promise<void> {
  let off = 0;
  const deadline = Date.now() + 20_000;
  while (off < bytes.length) {
    if (Date.now() > deadline) throw new Error("cannot finish a message");
    const n = io.send([bytes.subarray(off)]);
    if (n > 0) off += n;
    else await sleep(1);
  }
}
