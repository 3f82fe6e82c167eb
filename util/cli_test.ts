import assert from "node:assert/strict";
import { parseCli, parseMode, requestedLogFormat, type ServeCommand, UsageError } from "./cli.ts";

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

Deno.test("cli: one-shot commands win over everything else on the line", () => {
  assert.equal(parseCli(["--print-capabilities", "--bogus", "--device=nope"]).kind, "capabilities");
  assert.equal(
    parseCli(["--socket-path=/x", "--print-capabilities", "extra"]).kind,
    "capabilities",
  );
  assert.equal(parseCli(["--log-level=loud", "--help"]).kind, "help");
  assert.equal(parseCli(["--fd=abc", "-V"]).kind, "version");
});

Deno.test("cli: a second --device, or any option twice, is refused", () => {
  usageError(
    ["--socket-path=/x", DEV, DEV],
    /--device is given twice: one vfud serves exactly one/,
  );
  usageError(["--socket-path=/x", "--socket-path=/y", DEV], /--socket-path is given 2 times/);
  usageError(["--socket-path=/x", DEV, "--log-level=info", "--log-level=debug"], /--log-level/);
});

Deno.test("cli: device option values are usage errors, found before anything is opened", () => {
  usageError(
    ["--socket-path=/x", `${DEV},readonly=maybe`],
    /--device: readonly=maybe: expected on/,
  );
  usageError(
    ["--socket-path=/x", "--device=e1000,netdev=tap,ifname=t0,mac=zz"],
    /--device: mac=zz: .*not a MAC address/,
  );
  usageError(["--socket-path=/x", "--device=e1000,netdev=stream"], /netdev=stream needs path=/);
  const c = serve(["--socket-path=/x", "--device=virtio-blk,file=/img/a,,b.img,readonly=on"]);
  assert.equal(c.deviceOptions.get("file"), "/img/a,b.img");
});

Deno.test("cli: --socket-group resolves the group and makes the default mode 0660", () => {
  const groups: Record<string, number> = { kvm: 36, "36": 36 };
  const env = { groupId: (g: string) => groups[g] };
  assert.deepEqual(parseCli(["--socket-path=/x", "--socket-group=kvm", DEV], [], env), {
    ...serve(["--socket-path=/x", DEV]),
    socket: { kind: "path", path: "/x", mode: 0o660, group: { gid: 36, name: "kvm" } },
  });
  const explicit = parseCli(
    ["--socket-path=/x", "--socket-group=36", "--socket-mode=0640", DEV],
    [],
    env,
  ) as ServeCommand;
  assert.deepEqual(explicit.socket, {
    kind: "path",
    path: "/x",
    mode: 0o640,
    group: { gid: 36, name: "36" },
  });
  assert.throws(
    () => parseCli(["--socket-path=/x", "--socket-group=nope", DEV], [], env),
    /no group "nope"/,
  );
  usageError(["--fd=3", "--socket-group=root", DEV], /--socket-group applies to the socket/);
  // The system's name service answers by default: root is group 0 everywhere.
  assert.deepEqual(serve(["--socket-path=/x", "--socket-group=root", DEV]).socket, {
    kind: "path",
    path: "/x",
    mode: 0o660,
    group: { gid: 0, name: "root" },
  });
});

Deno.test("cli: --log-format defaults to journal when stderr is the journal", () => {
  assert.equal(
    (parseCli(["--socket-path=/x", DEV], [], { journal: true }) as ServeCommand).logFormat,
    "journal",
  );
  assert.equal(serve(["--socket-path=/x", DEV]).logFormat, "text");
  assert.equal(
    (parseCli(["--socket-path=/x", DEV, "--log-format=text"], [], {
      journal: true,
    }) as ServeCommand)
      .logFormat,
    "text",
  );
  assert.equal(requestedLogFormat(["--log-format", "json", "--bogus"]), "json");
  assert.equal(requestedLogFormat(["--log-format=xml"]), undefined);
});
