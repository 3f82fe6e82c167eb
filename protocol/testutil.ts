/**
 * Assertions shared by the protocol tests (imported only by `*_test.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { VfioUserError } from "./errors.ts";
import { fromHex } from "./hex.ts";
import { encodeCommand, splitMessage } from "./message.ts";

/** Asserts that `fn` throws a `VfioUserError` with `errno` (and a message matching `re`). */
export function assertErrno(fn: () => unknown, errno: number, re?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof VfioUserError, `expected VfioUserError, got ${String(e)}`);
    assert.equal(e.errno, errno, `errno of "${e.message}"`);
    if (re !== undefined) assert.match(e.message, re);
    return true;
  });
}

/** The request half of a codec. */
export interface RequestCodec<T> {
  decodeRequest(payload: Uint8Array): T;
  encodeRequest(req: T): Uint8Array;
}

/**
 * A golden whole command message (a peer's bytes): its payload decodes to `fields`, and encoding
 * them again gives the message back byte for byte. Returns the decoded request.
 */
export function assertGoldenCommand<T>(codec: RequestCodec<T>, message: Uint8Array, fields: T): T {
  const { header, payload } = splitMessage(message);
  const req = codec.decodeRequest(payload);
  assert.deepEqual(req, fields);
  assert.deepEqual(encodeCommand(header.id, header.cmd, codec.encodeRequest(req)), message);
  return req;
}

/** The reply half of a codec (what it decodes may carry more than what it encodes). */
export interface ReplyCodec<D extends E, E> {
  decodeReply(payload: Uint8Array): D;
  encodeReply(reply: E): Uint8Array;
}

/**
 * A golden reply payload: it decodes to `fields`, and encoding them again gives the bytes back.
 * Returns the decoded reply.
 */
export function assertGoldenReply<D extends E, E>(
  codec: ReplyCodec<D, E>,
  payload: Uint8Array,
  fields: D,
): D {
  const reply = codec.decodeReply(payload);
  assert.deepEqual(reply, fields);
  assert.deepEqual(codec.encodeReply(reply), payload);
  return reply;
}

/** For malformed-input tests: `patched(offset, hex)` is a copy of `base` with `hex` at `offset`. */
export function patcher(base: Uint8Array): (offset: number, hex: string) => Uint8Array {
  return (offset, hex) => {
    const p = base.slice();
    p.set(fromHex(hex), offset);
    return p;
  };
}
