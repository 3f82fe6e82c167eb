import assert from "node:assert/strict";
import { check, closeFd, libc } from "../sys/ffi.ts";
import { C } from "../sys/layout.ts";
import { memoryWirePair } from "./wire.ts";

const bytes = (...xs: number[]) => Uint8Array.from(xs);

Deno.test("memory wire: bytes in order, fds duplicated for the reader, a read ends after them", () => {
  const [a, b] = memoryWirePair();
  const efd = check("eventfd", libc.eventfd(0, C.EFD_CLOEXEC | C.EFD_NONBLOCK));
  try {
    assert.equal(b.recv(new Uint8Array(8)).n, -1, "nothing there yet");
    assert.equal(a.send([bytes(1, 2), bytes(3)], []), 3);
    assert.equal(a.send([bytes(4, 5)], [efd]), 2);
    assert.equal(a.send([bytes(6)], []), 1);
    const buf = new Uint8Array(16);
    // Bytes without fds up to the ones that carry fds...
    let r = b.recv(buf);
    assert.deepEqual([...buf.subarray(0, r.n)], [1, 2, 3]);
    assert.deepEqual(r.fds, []);
    // ...which start a read of their own, ending after them.
    r = b.recv(buf);
    assert.deepEqual([...buf.subarray(0, r.n)], [4, 5]);
    assert.equal(r.fds.length, 1);
    assert.notEqual(r.fds[0], efd, "the reader owns its own fd");
    closeFd(r.fds[0]);
    r = b.recv(buf);
    assert.deepEqual([...buf.subarray(0, r.n)], [6]);
    // The writer closes: end of stream; writing to a closed peer fails.
    a.close();
    assert.equal(b.recv(buf).n, 0);
    assert.throws(() => b.send([bytes(7)], []));
    b.close();
  } finally {
    closeFd(efd);
  }
});

Deno.test("memory wire: partial reads keep the rest; fds of unread bytes are closed with the end", () => {
  const [a, b] = memoryWirePair();
  a.send([new Uint8Array(10).fill(9)], []);
  const small = new Uint8Array(4);
  assert.equal(b.recv(small).n, 4);
  assert.equal(b.recv(small).n, 4);
  assert.equal(b.recv(small).n, 2);
  const efd = check("eventfd", libc.eventfd(0, C.EFD_CLOEXEC | C.EFD_NONBLOCK));
  a.send([bytes(1)], [efd]);
  closeFd(efd);
  b.close(); // the duplicate waiting in b is closed here (the fd sanitizer would see a leak)
  a.close();
});
