/**
 * Host side of the e1000 e2e check (run in the test's network namespace): a TCP server on
 * HOST:5001 that reads exactly UP_BYTES and prints their md5, and one on HOST:5002 that sends
 * DOWN_FILE and closes. Prints "PEER key=value" lines; exits when both are done (or after 200 s).
 *
 *   deno run --allow-all peer.ts HOST UP_BYTES DOWN_FILE
 *
 * @module
 */
import net from "node:net";
import { createHash } from "node:crypto";

const [host, upBytesText, downFile] = Deno.args;
const upBytes = Number(upBytesText);
const down = await Deno.readFile(downFile);

function listen(port: number, onConn: (s: net.Socket, done: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const server = net.createServer((sock) =>
      onConn(sock, () => {
        server.close();
        resolve();
      })
    );
    server.listen(port, host, () => console.log(`PEER listening=${host}:${port}`));
  });
}

const up = listen(5001, (sock, done) => {
  const hash = createHash("md5");
  let got = 0;
  const t0 = performance.now();
  sock.on("data", (chunk: Uint8Array) => {
    hash.update(chunk);
    got += chunk.length;
    if (got >= upBytes) {
      const s = (performance.now() - t0) / 1000;
      console.log(
        `PEER up_bytes=${got} up_md5_host=${hash.digest("hex")} up_host_s=${s.toFixed(2)}`,
      );
      sock.end();
      done();
    }
  });
  sock.on("error", (e) => console.log(`PEER up_error=${e.message}`));
});
const dn = listen(5002, (sock, done) => {
  console.log(`PEER down_md5_host=${createHash("md5").update(down).digest("hex")}`);
  sock.end(down, () => done());
  sock.on("error", (e) => console.log(`PEER down_error=${e.message}`));
});
const timer = setTimeout(() => {
  console.log("PEER status=timeout");
  Deno.exit(1);
}, 200_000);
await Promise.all([up, dn]);
clearTimeout(timer);
console.log("PEER status=ok");
