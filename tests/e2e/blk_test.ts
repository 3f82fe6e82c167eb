/**
 * End-to-end: a virtio-blk disk served by vfud to QEMU 11.1's real vfio-user-pci client, driven by
 * a Linux guest (guest/blk-integrity.sh). The same suite first runs against QEMU's own in-process
 * virtio-blk-pci: that proves the harness (guest, scripts, checks) independently of vfud.
 *
 * Per suite:
 *  - write/read-back: a sparse image with a known random background; the guest writes random
 *    pattern files with O_DIRECT at several offsets (one 4 MiB write per request, a 512-byte
 *    sector, a range ending exactly at the last sector, ...), flushes, drops caches, reads them
 *    back with O_DIRECT and checks md5s, the untouched neighbourhoods and the whole disk; after
 *    the guest powered off the host compares the image byte for byte (patterns in place, every
 *    other byte unchanged). Then a second guest boots against the same running server and reads
 *    the first boot's data back. Finally the server must exit 0 on SIGTERM and remove its socket.
 *  - readonly=on: every write fails in the guest, reads work, the image is bit-for-bit unchanged.
 *
 * Run: deno task test:e2e (needs root on first run: tests/e2e/setup.sh builds a Debian root).
 */
import assert from "node:assert/strict";
import {
  assertGuestOk,
  describeDiff,
  type Disk,
  type GuestOptions,
  type GuestRun,
  md5,
  md5File,
  MiB,
  patternDisk,
  type PatternSpec,
  preparePrerequisites,
  prng,
  runGuest,
  Vfud,
  workDir,
  writesEnv,
} from "./lib.ts";

/** Disk size: 64 MiB + 12 KiB (a multiple of 4 KiB, deliberately not of 1 MiB). */
const IMAGE_BYTES = 64 * MiB + 12 * 1024;
const GUEST_TIMEOUT_S = 240;
const SEED = Number(Deno.env.get("VFUD_E2E_SEED") ?? Math.floor(Math.random() * 2 ** 31));

// ------------------------------------------------------------------------------------------------
// The disk: background + patterns

/** [name, offset, length, dd bs] of the writes; the last one ends exactly at the last sector. */
function patternLayout(size: number): PatternSpec[] {
  return [
    ["p0-4m-bs4m", 1 * MiB + 4096, 4 * MiB, "4M"], // one 4 MiB write(2): > 1 MiB per request
    ["p1-64k-first", 0, 64 * 1024, "4K"], // the first sectors, 16 small requests
    ["p2-512-sector", 20 * MiB + 512, 512, "512"], // a single 512-byte sector, not 4K aligned
    ["p3-1536k-bs512k", 33 * MiB - 8192, 1536 * 1024, "512K"],
    ["p4-2m-last", size - 2 * MiB, 2 * MiB, "2M"], // ends exactly at the last sector
  ];
}

/**
 * A sparse image: holes, a random 64 KiB block at every MiB, and random bytes 128 KiB around every
 * pattern (so a misplaced or overlong write lands on known data).
 */
function makeDisk(dir: string, seed: number): Promise<Disk> {
  const original = new Uint8Array(IMAGE_BYTES);
  const fill = (off: number, len: number, s: number) => {
    const a = Math.max(0, off), b = Math.min(IMAGE_BYTES, off + len);
    if (b > a) original.set(prng(s, b - a), a);
  };
  for (let off = 0; off < IMAGE_BYTES; off += MiB) fill(off, 64 * 1024, seed + off);
  const layout = patternLayout(IMAGE_BYTES);
  layout.forEach(([, off, len], i) =>
    fill(off - 128 * 1024, len + 256 * 1024, seed + 7919 * (i + 1))
  );
  return patternDisk(dir, original, layout, seed);
}

/** OFFSET:LENGTH:MD5 of `content` around every pattern: 64 KiB before and after it. */
function neighbourChecks(d: Disk, content: Uint8Array): string {
  const out: string[] = [];
  for (const p of d.patterns) {
    for (
      const [a, b] of [[p.offset - 65536, p.offset], [
        p.offset + p.data.length,
        p.offset + p.data.length + 65536,
      ]]
    ) {
      const lo = Math.max(0, a), hi = Math.min(content.length, b);
      if (hi > lo) out.push(`${lo}:${hi - lo}:${md5(content.subarray(lo, hi))}`);
    }
  }
  return out.join(" ");
}

const ranges = (d: Disk) =>
  d.patterns.map((p) => ({ name: p.name, offset: p.offset, length: p.data.length }));

// ------------------------------------------------------------------------------------------------
// What serves the disk to the guest

interface Served {
  /** run-guest.sh options that attach the disk */
  guest: Partial<GuestOptions>;
  /** throws unless the server is still up */
  assertAlive(): Promise<void>;
  /** clean shutdown, with the server's exit assertions */
  stop(): Promise<void>;
  /** cleanup after a failure, no assertions */
  kill(): Promise<void>;
  describe(): Promise<string>;
}

interface Target {
  name: string;
  serve(dir: string, image: string, readonly: boolean): Promise<Served>;
}

/**
 * vfud as a separate process; the guest sees it through QEMU's vfio-user-pci client. Arguments
 * starting with "--" are vfud options, the others device options (e.g. "direct=on").
 */
function vfud(...args: string[]): Target {
  return {
    name: `vfud virtio-blk over vfio-user${args.length ? ` [${args.join(" ")}]` : ""}`,
    serve: (dir, image, readonly) => serveVfud(dir, image, readonly, args),
  };
}

async function serveVfud(
  dir: string,
  image: string,
  readonly: boolean,
  args: string[],
): Promise<Served> {
  const v = await Vfud.start({
    dir,
    image,
    readonly,
    extraArgs: args.filter((a) => a.startsWith("--")),
    deviceOptions: args.filter((a) => !a.startsWith("--")),
  });
  return {
    guest: { vfu: [v.socket] },
    assertAlive: () => v.assertAlive(),
    stop: () => v.stop(),
    kill: () => v.kill(),
    describe: () => v.describe(),
  };
}

/** QEMU's in-process virtio-blk-pci (disable-legacy=on: same PCI id 0x1af4:0x1042). */
const QEMU_BASELINE: Target = {
  name: "baseline: QEMU in-process virtio-blk",
  serve(_dir, image, readonly) {
    const none = () => Promise.resolve();
    return Promise.resolve({
      guest: { disks: [readonly ? `${image},readonly=on` : image] },
      assertAlive: none,
      stop: none,
      kill: none,
      describe: () => Promise.resolve(""),
    });
  },
};

// ------------------------------------------------------------------------------------------------
// Checks

/** Asserts RESULT values; reports every mismatch at once, with the guest's output. */
function expectResults(
  run: GuestRun,
  want: Record<string, string | number>,
  what: string,
  context: string,
) {
  const bad = Object.entries(want)
    .filter(([k, v]) => run.results[k] !== String(v))
    .map(([k, v]) => `  ${k}: got ${run.results[k] ?? "(missing)"}, want ${v}`);
  if (bad.length) {
    throw new Error(
      `${what}: unexpected guest results (seed ${SEED}):\n${
        bad.join("\n")
      }\n${run.stdout}${context}`,
    );
  }
}

/** The image on the host must equal `want` byte for byte. */
async function expectImage(d: Disk, want: Uint8Array, what: string) {
  const diff = describeDiff(await Deno.readFile(d.path), want, ranges(d));
  assert.equal(
    diff,
    undefined,
    `${what}: host image differs from the expected content (seed ${SEED}): ${diff}`,
  );
}

function blkSuite(target: Target, mem: "shared" | "private") {
  const tag = `${target.name} (${mem} guest RAM)`;

  Deno.test(`${tag}: O_DIRECT writes + read-back, host byte compare, second boot, clean shutdown`, async (t) => {
    await preparePrerequisites();
    const wd = await workDir("blk");
    let served: Served | undefined;
    let ok = false;
    try {
      const d = await makeDisk(wd.path, SEED);
      served = await target.serve(wd.path, d.path, false);
      const s = served;
      const base: GuestOptions = {
        ...s.guest,
        mem,
        script: "guest/blk-integrity.sh",
        timeoutS: GUEST_TIMEOUT_S,
        env: {
          VFUD_EXPECT_BYTES: IMAGE_BYTES,
          VFUD_WRITES: writesEnv(d),
          VFUD_CHECKS: neighbourChecks(d, d.expected),
          VFUD_EXPECT_DISK_MD5: md5(d.expected),
        },
      };
      const perWrite = (keys: string[]) =>
        Object.fromEntries(d.patterns.flatMap((_, i) => keys.map((k) => [`w${i}_${k}`, 1])));

      const first = await t.step(
        "(a) guest writes with O_DIRECT and reads back; host compares the image",
        async () => {
          const run = await runGuest({
            ...base,
            files: d.patterns.map((p) => p.file),
            env: { ...base.env, VFUD_BLK_MODE: "write" },
            log: `${wd.path}/guest-a.log`,
          });
          assertGuestOk(run, "(a) first boot", await s.describe());
          expectResults(
            run,
            {
              blk_found: 1,
              blk_driver: "virtio-pci",
              blk_bytes: IMAGE_BYTES,
              blk_size_ok: 1,
              blk_ro: 0,
              ...perWrite(["write_ok", "read_ok", "read4k_ok"]),
              flush_ok: 1,
              disk_md5_ok: 1,
              blk_failures: 0,
              blk_integrity: "ok",
            },
            "(a)",
            await s.describe(),
          );
          await s.assertAlive();
          // the guest has powered off and QEMU exited: the image must hold exactly the patterns
          await expectImage(d, d.expected, "(a) after the first boot");
        },
      );

      let second = false;
      if (first) {
        second = await t.step(
          "(b) a second boot against the same server reads the first boot's data",
          async () => {
            await s.assertAlive();
            const run = await runGuest({
              ...base,
              env: { ...base.env, VFUD_BLK_MODE: "verify" },
              log: `${wd.path}/guest-b.log`,
            });
            assertGuestOk(run, "(b) second boot", await s.describe());
            expectResults(
              run,
              {
                blk_bytes: IMAGE_BYTES,
                ...perWrite(["read_ok", "read4k_ok"]),
                disk_md5_ok: 1,
                blk_integrity: "ok",
              },
              "(b)",
              await s.describe(),
            );
            await s.assertAlive();
            await expectImage(d, d.expected, "(b) after the second boot");
          },
        );
      }

      await served.stop(); // exit code 0 on SIGTERM, socket removed
      served = undefined;
      await expectImage(d, d.expected, "after the server stopped");
      ok = first && second;
    } finally {
      await served?.kill();
      await wd.done(ok);
    }
  });

  Deno.test(`${tag}: readonly=on rejects writes, reads work, image unchanged`, async () => {
    await preparePrerequisites();
    const wd = await workDir("blk-ro");
    let served: Served | undefined;
    let ok = false;
    try {
      const d = await makeDisk(wd.path, SEED + 1);
      const before = await md5File(d.path);
      served = await target.serve(wd.path, d.path, true);
      const run = await runGuest({
        ...served.guest,
        mem,
        script: "guest/blk-integrity.sh",
        timeoutS: GUEST_TIMEOUT_S,
        files: d.patterns.map((p) => p.file),
        env: {
          VFUD_BLK_MODE: "readonly",
          VFUD_EXPECT_BYTES: IMAGE_BYTES,
          VFUD_WRITES: writesEnv(d),
          // the pattern ranges themselves must still hold the original bytes, and so must the disk
          VFUD_CHECKS: d.patterns.map((p) =>
            `${p.offset}:${p.data.length}:${
              md5(d.original.subarray(p.offset, p.offset + p.data.length))
            }`
          ).join(" "),
          VFUD_EXPECT_DISK_MD5: md5(d.original),
        },
        log: `${wd.path}/guest-ro.log`,
      });
      assertGuestOk(run, "readonly boot", await served.describe());
      expectResults(
        run,
        {
          blk_bytes: IMAGE_BYTES,
          blk_size_ok: 1,
          // a read-only virtio-blk device offers VIRTIO_BLK_F_RO, so the guest marks the disk read-only
          blk_ro: 1,
          ...Object.fromEntries(
            d.patterns.flatMap((_, i) => [[`w${i}_write_rejected`, 1], [`c${i}_ok`, 1]]),
          ),
          disk_md5_ok: 1,
          blk_integrity: "ok",
        },
        "readonly",
        await served.describe(),
      );
      await served.stop();
      served = undefined;
      assert.equal(await md5File(d.path), before, "readonly: the image changed");
      await expectImage(d, d.original, "readonly");
      ok = true;
    } finally {
      await served?.kill();
      await wd.done(ok);
    }
  });
}

// The harness itself, against QEMU's own device: if this fails, the problem is not in vfud.
blkSuite(QEMU_BASELINE, "shared");

blkSuite(vfud(), "shared");
// Guest RAM without fds: QEMU sends DMA_MAP without an fd, so every virtqueue and data access goes
// through DMA_READ/DMA_WRITE messages and bounce buffers; with the default bounce limit, with a
// limit of one page (every request done in many pieces) and with a large one.
blkSuite(vfud(), "private");
blkSuite(vfud("--max-bounce-buffer-size=4096"), "private");
blkSuite(vfud("--max-bounce-buffer-size=64M"), "private");
// O_DIRECT backing, two request queues, the I/O-thread engine
blkSuite(vfud("direct=on", "num-queues=2", "aio=threads"), "shared");
blkSuite(vfud("direct=on"), "private");
