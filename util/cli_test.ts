import assert from "node:assert/strict";
import { parseCli, parseMode, type ServeCommand, UsageError } from "./cli.ts";

const DEV = "--device=virtio-blk,file=/nonexistent.img";

function serve(args: string[], activated: number[] = []): ServeCommand {
  const c = parseCli(args, activated);
  assert.equal(c.kind, "serve");
  return c as ServeCommand;
}

function usageError(args: string[], match: RegExp, activated: number[] = []): void {
  assert.throws(() => parseCli(args, activated), (e: Error) => {
    assert.ok(e instanceof UsageError, `${e}`);
    assert.match(e.message, match);
    return true;
  });
}

Deno.test("cli: --socket-path with the default mode 0600, or --socket-mode", () => {
  assert.deepEqual(serve(["--socket-path=/run/x.sock", DEV]).socket, {
    kind: "path",
    path: "/run/x.sock",
    mode: 0o600,
  });
  const s = serve(["--socket-path", "/run/x.sock", "--socket-mode=0660", DEV]).socket;
  assert.deepEqual(s, { kind: "path", path: "/run/x.sock", mode: 0o660 });
});

Deno.test("cli: exactly one of --socket-path and --fd", () => {
  usageError([DEV], /exactly one of --socket-path=PATH and --fd=N/);
  usageError(["--socket-path=/x", "--fd=3", DEV], /only one of/);
  usageError(["--socket-path=/x", DEV], /only one of .*socket activation/, [3]);
});

Deno.test("cli: --fd validation", () => {
  assert.deepEqual(serve(["--fd=3", DEV]).socket, { kind: "fd", fd: 3, activated: false });
  assert.deepEqual(serve(["--fd=0", DEV]).socket, { kind: "fd", fd: 0, activated: false });
  usageError(["--fd=abc", DEV], /not a file descriptor number/);
  usageError(["--fd=-1", DEV], /not a file descriptor number/);
  usageError(["--fd=1", DEV], /stdout\/stderr/);
  usageError(["--fd=2", DEV], /stdout\/stderr/);
  usageError(["--fd=3", "--socket-mode=600", DEV], /--socket-mode applies/);
});

Deno.test("cli: socket activation stands in for --fd", () => {
  assert.deepEqual(serve([DEV], [3]).socket, { kind: "fd", fd: 3, activated: true });
  assert.deepEqual(serve(["--fd=3", DEV], [3]).socket, { kind: "fd", fd: 3, activated: true });
  usageError([DEV], /passed 2 sockets/, [3, 4]);
});

Deno.test("cli: device, sizes, logging and trace options", () => {
  const c = serve([
    "--socket-path=/x",
    DEV,
    "--log-level=debug",
    "--log-format=json",
    "--dma-chunk-size=64K",
    "--trace-protocol=-",
  ]);
  assert.equal(c.deviceType.name, "virtio-blk");
  assert.equal(c.deviceOptions.get("file"), "/nonexistent.img");
  assert.equal(c.logLevel, "debug");
  assert.equal(c.logFormat, "json");
  assert.equal(c.dmaChunk, 64 << 10);
  assert.equal(c.trace, "-");
  usageError(["--socket-path=/x"], /--device=TYPE,... is required/);
  usageError(["--socket-path=/x", "--device=nope"], /unknown device type "nope"/);
  usageError(["--socket-path=/x", DEV, "--log-format=xml"], /--log-format/);
  usageError(["--socket-path=/x", DEV, "--trace-protocol="], /--trace-protocol/);
  usageError(["--socket-path=/x", DEV, "--bogus"], /bogus/);
  usageError(["--socket-path=/x", DEV, "extra"], /extra/);
});

Deno.test("cli: one-shot commands need nothing else", () => {
  assert.equal(parseCli(["--print-capabilities"]).kind, "capabilities");
  assert.equal(parseCli(["--help"]).kind, "help");
  assert.equal(parseCli(["-V"]).kind, "version");
});

Deno.test("cli: octal modes", () => {
  assert.equal(parseMode("600", "m"), 0o600);
  assert.equal(parseMode("0o666", "m"), 0o666);
  assert.equal(parseMode("0777", "m"), 0o777);
  assert.throws(() => parseMode("0800", "m"), UsageError);
  assert.throws(() => parseMode("4755", "m"), UsageError);
  assert.throws(() => parseMode("rw", "m"), UsageError);
});
