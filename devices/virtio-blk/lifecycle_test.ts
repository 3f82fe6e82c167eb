/**
 * virtio-blk's own part of a saved state: what the driver saw of the disk. A destination whose
 * disk differs in a way the guest driver would notice refuses the state.
 */
import assert from "node:assert/strict";
import { Errno, ErrnoError } from "../../sys/errno.ts";
import { decodeRecord, encodeRecord } from "../../protocol/record.ts";
import { MemoryBackend } from "./backend.ts";
import { blkRig, blkUp } from "./testing.ts";

Deno.test("virtio-blk lifecycle: a destination with another disk refuses the state, the same disk takes it", async () => {
  const src = blkRig({ serial: "disk-a" });
  blkUp(src);
  await src.dev.pause();
  const state = decodeRecord(encodeRecord(src.dev.save() as never));
  const version = src.dev.stateVersion;
  const others: [string, Parameters<typeof blkRig>[0], RegExp][] = [
    ["capacity", { backend: new MemoryBackend(2 << 20) }, /capacity: the saved disk has 1048576/],
    // A read-only disk offers other features (RO, no DISCARD): the transport refuses first.
    ["write permission", { readonly: true }, /were never offered|readonly: differs/],
    ["serial", { serial: "disk-b" }, /id: another serial/],
    [
      "logical block size",
      { backend: new MemoryBackend(1 << 20, { blockSize: 4096 }) },
      /blockSize: 512, this disk 4096/,
    ],
  ];
  for (const [what, opts, re] of others) {
    const dst = blkRig({ serial: "disk-a", ...opts });
    await dst.dev.pause();
    assert.throws(
      () => dst.dev.restore(state, version),
      (e) => e instanceof ErrnoError && e.errno === Errno.EINVAL && re.test(e.message),
      what,
    );
  }
  const same = blkRig({ serial: "disk-a" });
  await same.dev.pause();
  same.dev.restore(state, version);
  assert.deepEqual(encodeRecord(same.dev.save() as never), encodeRecord(state as never));
});

Deno.test("virtio-blk lifecycle: a state saved before the block size was recorded means 512", async () => {
  const src = blkRig();
  blkUp(src);
  await src.dev.pause();
  const state = decodeRecord(encodeRecord(src.dev.save() as never)) as {
    model: Record<string, unknown>;
  };
  delete state.model.blockSize;
  const dst = blkRig();
  await dst.dev.pause();
  dst.dev.restore(state, src.dev.stateVersion);
  const big = blkRig({ backend: new MemoryBackend(1 << 20, { blockSize: 4096 }) });
  await big.dev.pause();
  assert.throws(() => big.dev.restore(state, src.dev.stateVersion), /blockSize: 512/);
});
