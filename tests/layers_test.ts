/**
 * The layer rule of docs/architecture.md, enforced: every relative import of a source file must
 * go to its own layer or one listed below it. Fails with the offending imports.
 *
 * @module
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";

const ROOT = normalize(join(dirname(new URL(import.meta.url).pathname), ".."));

/** Every layer below the program (util/, tools/, main.ts), which may use them all. */
const LIBRARY = [
  "sys",
  "spec",
  "protocol",
  "transport",
  "pci",
  "dma",
  "devices",
  "migration",
  "server",
  "client",
];

/** What each top-level folder (or main.ts) may import besides itself. */
export const LAYERS: Readonly<Record<string, readonly string[]>> = {
  // bottom: libc FFI, layouts, errno, fds, epoll, sockets, logging
  sys: [],
  // the numbers of the hardware specifications (PCI, virtio): constants, no code to speak of
  spec: [],
  // pure codecs: nothing but the errno table
  protocol: ["sys/errno.ts"],
  // the vfio-user socket: framing, fd passing, one connection
  transport: ["sys", "protocol"],
  pci: ["sys", "spec", "protocol"],
  dma: ["sys", "protocol"],
  devices: ["sys", "spec", "protocol", "pci", "dma"],
  migration: ["sys", "spec", "protocol", "pci", "dma", "devices"],
  server: ["sys", "spec", "protocol", "transport", "pci", "dma", "devices", "migration"],
  client: ["sys", "spec", "protocol", "transport"],
  util: LIBRARY,
  tools: [...LIBRARY, "util"],
  "main.ts": [...LIBRARY, "util", "tools"],
};

async function* sources(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* sources(p);
    else if (e.name.endsWith(".ts")) yield p;
  }
}

function layerOf(rel: string): string {
  return rel.includes("/") ? rel.split("/")[0] : rel;
}

function allowed(from: string, to: string): boolean {
  const a = layerOf(from), b = layerOf(to);
  if (a === b || b === "deno.json") return true;
  return (LAYERS[a] ?? []).some((l) => l === b || l === to);
}

const IMPORT = /(?:import|export)\s[^;]*?from\s+"(\.{1,2}\/[^"]+)"|import\("(\.{1,2}\/[^"]+)"\)/g;

Deno.test("layers: imports only go down (docs/architecture.md)", async () => {
  const bad: string[] = [];
  const files: string[] = [join(ROOT, "main.ts")];
  for (const top of Object.keys(LAYERS)) {
    if (top.endsWith(".ts")) continue;
    try {
      for await (const f of sources(join(ROOT, top))) files.push(f);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  for (const file of files) {
    const rel = relative(ROOT, file);
    // tests and test helpers beside the source may reach anything they test
    if (/_test\.ts$|\/testing(\.ts|\/)/.test(rel)) continue;
    const text = await Deno.readTextFile(file);
    for (const m of text.matchAll(IMPORT)) {
      const target = relative(ROOT, normalize(join(dirname(file), m[1] ?? m[2])));
      if (!allowed(rel, target)) bad.push(`${rel} -> ${target}`);
    }
  }
  assertEquals(bad, [], "imports that cross a layer the wrong way");
});

Deno.test("layers: the rule itself catches a wrong-way import", () => {
  assertEquals(allowed("dma/table.ts", "server/host.ts"), false);
  assertEquals(allowed("protocol/wire.ts", "sys/ffi.ts"), false);
  assertEquals(allowed("protocol/wire.ts", "sys/errno.ts"), true);
  assertEquals(allowed("server/host.ts", "dma/table.ts"), true);
  assertEquals(allowed("client/pci.ts", "spec/pci.ts"), true);
  assertEquals(allowed("client/pci.ts", "pci/config.ts"), false);
  assertEquals(allowed("spec/virtio.ts", "sys/errno.ts"), false);
});
