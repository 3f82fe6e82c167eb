/** The generated bash completion, driven by a real bash. */
import assert from "node:assert/strict";
import { bashCompletion } from "./completion.ts";

/** Completes each line (cursor at its end) in one bash; returns the replies of each. */
async function complete(lines: string[], cwd: string): Promise<string[][]> {
  const script = [
    bashCompletion(),
    't() { COMP_LINE="$1"; COMP_POINT=${#1}; COMPREPLY=(); _vfud; printf "%s\\n" "${COMPREPLY[*]}"; }',
    ...lines.map((l) => `t ${JSON.stringify(l)}`),
  ].join("\n");
  const out = await new Deno.Command("bash", {
    args: ["--norc", "--noprofile", "-c", script],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).split("\n").slice(0, lines.length).map((l) =>
    l ? l.split(" ").sort() : []
  );
}

Deno.test("completion: options, values, device types, device options, files, probe", async () => {
  const dir = await Deno.makeTempDir();
  try {
    Deno.writeFileSync(`${dir}/disk.img`, new Uint8Array(0));
    Deno.mkdirSync(`${dir}/images`);
    const got = await complete([
      "vfud --so",
      "vfud --log-level=d",
      "vfud --log-format=",
      "vfud --device=",
      "vfud --device=virtio-blk,",
      "vfud --device=virtio-blk,re",
      "vfud --device=virtio-blk,readonly=",
      "vfud --device=virtio-blk,file=di",
      "vfud --device=e1000,netdev=",
      "vfud --socket-path=im",
      "vfud --socket-group=roo",
      "vfud pr",
      "vfud probe --j",
      "vfud probe --r",
      "vfud probe di",
    ], dir);
    assert.deepEqual(got, [
      ["--socket-group=", "--socket-mode=", "--socket-path="],
      ["debug"],
      ["journal", "json", "text"],
      ["e1000,", "virtio-blk,"],
      [
        "virtio-blk,aio=",
        "virtio-blk,direct=",
        "virtio-blk,discard=",
        "virtio-blk,file=",
        "virtio-blk,num-queues=",
        "virtio-blk,queue-size=",
        "virtio-blk,readonly=",
        "virtio-blk,serial=",
        "virtio-blk,write-zeroes=",
      ],
      ["virtio-blk,readonly="],
      ["off", "on"],
      ["disk.img"],
      ["stream", "tap"],
      ["images/"],
      ["root"],
      ["probe"],
      ["--json"],
      ["--registers-only"],
      ["disk.img"],
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
