/**
 * Host side of the e1000 TCP check (net_test.ts), run inside the test's network namespace: one
 * TCP server that receives the guest's upload (exactly UP_BYTES, then closes) and reports its md5,
 * and one that sends DOWN_FILE to the guest and closes. Each serves a single connection. Prints
 * "PEER key=value" lines; exits 0 when both transfers are done, 1 on an error or after the time
 * limit.
 *
 *   deno run --allow-net --allow-read tests/e2e/net_peer.ts \
 *     HOST UP_PORT UP_BYTES DOWN_PORT DOWN_FILE TIMEOUT_S
 *
 * @module
 */
import { createHash } from "node:crypto";

const [host, upPortText, upBytesText, downPortText, downFile, timeoutText] = Deno.args;
if (!downFile) {
  console.error("usage: net_peer.ts HOST UP_PORT UP_BYTES DOWN_PORT DOWN_FILE [TIMEOUT_S]");
  Deno.exit(2);
}
const upBytes = Number(upBytesText);
const down = await Deno.readFile(downFile);
const timeoutS = Number(timeoutText ?? 200);

const timer = setTimeout(() => {
  console.log(`PEER status=timeout after_s=${timeoutS}`);
  Deno.exit(1);
}, timeoutS * 1000);

const upListener = Deno.listen({ hostname: host, port: Number(upPortText) });
const downListener = Deno.listen({ hostname: host, port: Number(downPortText) });
console.log(`PEER listening=${host} up_port=${upPortText} down_port=${downPortText}`);

/** Receives the upload: reads until UP_BYTES arrived (or EOF), then closes. */
async function receiveUpload(): Promise<void> {
  const conn = await upListener.accept();
  upListener.close();
  console.log(`PEER up_from=${(conn.remoteAddr as Deno.NetAddr).hostname}`);
  const hash = createHash("md5");
  const buf = new Uint8Array(256 * 1024);
  let got = 0;
  const t0 = performance.now();
  try {
    while (got < upBytes) {
      const n = await conn.read(buf);
      if (n === null) break;
      hash.update(buf.subarray(0, n));
      got += n;
    }
  } finally {
    conn.close();
  }
  const s = (performance.now() - t0) / 1000;
  console.log(`PEER up_bytes=${got} up_md5_host=${hash.digest("hex")} up_host_s=${s.toFixed(2)}`);
}

/** Sends DOWN_FILE to the first client and closes. */
async function sendDownload(): Promise<void> {
  const conn = await downListener.accept();
  downListener.close();
  try {
    for (let off = 0; off < down.length;) off += await conn.write(down.subarray(off));
  } finally {
    conn.close();
  }
  console.log(
    `PEER down_bytes_sent=${down.length} down_md5_host=${
      createHash("md5").update(down).digest("hex")
    }`,
  );
}

try {
  await Promise.all([receiveUpload(), sendDownload()]);
} catch (e) {
  console.log(`PEER status=error error=${String(e).replaceAll(/\s+/g, "_")}`);
  Deno.exit(1);
}
clearTimeout(timer);
console.log("PEER status=ok");
