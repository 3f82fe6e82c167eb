/**
 * Packet backends for network devices: tap interfaces, QEMU-compatible stream sockets and an
 * in-memory cable for tests, plus MAC address helpers. Backends run on the process's EventLoop;
 * {@link PrivateLoop} gives a device its own loop when the caller has none to share.
 *
 * @module
 */
import { EventLoop } from "../../sys/event_loop.ts";
import type { NetBackendBase } from "./backend.ts";
import { StreamBackend } from "./stream.ts";
import { TapBackend } from "./tap.ts";

export * from "./backend.ts";
export { defaultMac, formatMac, parseMac } from "./mac.ts";
export { MemoryBackend, memoryPair } from "./memory.ts";
export { StreamBackend, type StreamOptions } from "./stream.ts";
export { encodeFrame, FramingError, StreamDecoder } from "./stream_codec.ts";
export { TapBackend, type TapOptions } from "./tap.ts";

/** A backend choice as given on the command line. */
export type NetdevSpec =
  | { netdev: "tap"; ifname: string }
  | { netdev: "stream"; path: string; server: boolean };

/** Opens the backend `spec` describes on `loop`. */
export function openNetBackend(loop: EventLoop, spec: NetdevSpec): NetBackendBase {
  switch (spec.netdev) {
    case "tap":
      return TapBackend.open(loop, { ifname: spec.ifname });
    case "stream":
      return StreamBackend.open(loop, { path: spec.path, server: spec.server });
  }
}

/** A canonical text of `spec` (seed of the default MAC address). */
export function describeNetdev(spec: NetdevSpec): string {
  return spec.netdev === "tap"
    ? `tap,ifname=${spec.ifname}`
    : `stream,path=${spec.path},server=${spec.server ? "on" : "off"}`;
}

/** An EventLoop of its own, running until {@link stop}. */
export class PrivateLoop {
  readonly loop: EventLoop = new EventLoop();
  readonly #done: Promise<void>;

  constructor() {
    this.#done = this.loop.run();
  }

  /** Ends the loop; resolves when it closed its fds. */
  stop(): Promise<void> {
    this.loop.stop();
    return this.#done;
  }
}
