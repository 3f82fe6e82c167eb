/**
 * e1000 in the lifecycle suite: a stream cable to a test hub shared by source and destination;
 * the workload is transmit descriptors (each frame must reach the hub exactly once, in order,
 * whichever server sent it) and frames from the hub (each must reach the guest once, in order).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  E1000Driver,
  GuestArena,
  type GuestRam,
  pollUntil,
  type VfioUserClient,
} from "../../../client/mod.ts";
import {
  GUEST_MAC,
  type HubPort,
  PEER_MAC,
  seqRange,
  StreamHub,
  testFrame,
  testSeqs,
} from "../stream_hub.ts";
import type { LifecycleKit, Workload } from "./kit.ts";

/** An e1000 driver of `client` with its rings and buffers in `ram` (mapped at 0), link up. */
export async function nicUp(
  client: VfioUserClient,
  ram: GuestRam,
  rxCount: number,
  txCount: number,
): Promise<E1000Driver> {
  const nic = await E1000Driver.create(client, {
    arena: new GuestArena(0n, ram.bytes),
    rxCount,
    txCount,
  });
  await nic.waitLink();
  return nic;
}

class NetWorkload implements Workload {
  readonly #nic: E1000Driver;
  readonly #hub: StreamHub;
  #portIndex: number;
  #port: HubPort;
  #tx = 0;
  #rx = 0;
  readonly #received: number[] = [];

  constructor(nic: E1000Driver, hub: StreamHub, portIndex: number, port: HubPort) {
    this.#nic = nic;
    this.#hub = hub;
    this.#portIndex = portIndex;
    this.#port = port;
  }

  async start(n: number): Promise<void> {
    this.#nic.reclaim();
    const frames = seqRange(this.#tx, this.#tx += n).map((s) =>
      testFrame(PEER_MAC, GUEST_MAC, "g", s, 60 + (s * 37) % 1400)
    );
    await this.#nic.send(frames);
  }

  async duringPause(): Promise<void> {
    await this.#send(8);
  }

  #send(n: number): Promise<void> {
    const frames = seqRange(this.#rx, this.#rx += n).map((s) =>
      testFrame(GUEST_MAC, PEER_MAC, "p", s, 60 + (s * 53) % 1400)
    );
    return this.#port.send(frames);
  }

  async finish(): Promise<void> {
    await this.#send(4); // and the receive path works
    const sent = () => this.#hub.ports.flatMap((p) => testSeqs(p.frames, "g"));
    await pollUntil(() => (sent().length >= this.#tx ? true : undefined), "frames at the hub");
    assert.deepEqual(sent(), seqRange(0, this.#tx), "each transmit frame once, in order");
    await pollUntil(async () => {
      this.#received.push(...testSeqs(await this.#nic.receive(), "p"));
      return this.#received.length >= this.#rx ? true : undefined;
    }, "frames at the guest");
    assert.deepEqual(this.#received, seqRange(0, this.#rx), "each received frame once, in order");
    await this.#nic.waitTx();
  }

  async moveTo(client: VfioUserClient): Promise<void> {
    this.#nic.moveTo(client);
    this.#port = await this.#hub.port(++this.#portIndex); // the destination's cable
  }

  close(): void {}
}

/** The e1000 kit. */
export const e1000Kit: LifecycleKit = {
  setup: (dir) => Promise.resolve(new StreamHub(`${dir}/hub.sock`)),
  device: (dir) => `e1000,netdev=stream,path=${dir}/hub.sock,server=off,mac=52:54:00:12:34:56`,
  async open(client: VfioUserClient, ram: GuestRam, shared) {
    const hub = shared as StreamHub;
    const index = hub.ports.length === 0 ? 0 : hub.ports.length - 1;
    const port = await hub.port(index);
    return new NetWorkload(await nicUp(client, ram, 64, 128), hub, index, port);
  },
};
