/**
 * virtio-blk in the lifecycle suite: a disk image the source and destination share, and a
 * workload of reads and writes on disjoint sectors whose every completion (status, used length,
 * data) and the final disk contents are checked.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type BlkCompletion,
  GuestArena,
  type GuestRam,
  randomBytes,
  type VfioUserClient,
  VirtioBlkDriver,
} from "../../../client/mod.ts";
import { BlkStatus, ReqType, SECTOR_SIZE } from "../../../spec/virtio_blk.ts";
import type { LifecycleKit, Workload } from "./kit.ts";

const IMAGE = 8 << 20;

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** What the test expects of the disk and of every request it submitted. */
export class BlkWorkload implements Workload {
  readonly disk: Uint8Array;
  readonly driver: VirtioBlkDriver;
  readonly #image: string | undefined;
  readonly #expect = new Map<number, { type: number; data?: Uint8Array; what: string }>();
  #next = 64; // sector of the next write (disjoint ranges: no two requests overlap)
  submitted = 0;
  completed = 0;

  /** `image`: the file to compare with {@link disk} after each {@link finish}. */
  constructor(driver: VirtioBlkDriver, disk: Uint8Array, image?: string) {
    this.driver = driver;
    this.disk = disk;
    this.#image = image;
  }

  /** Places a write of `sectors` fresh sectors in the ring (no kick). */
  write(sectors: number): number {
    if (this.#next + sectors > this.disk.length / SECTOR_SIZE) this.#next = 64;
    const sector = BigInt(this.#next);
    this.#next += sectors;
    const data = randomBytes(sectors * SECTOR_SIZE);
    const head = this.driver.enqueue({ type: ReqType.OUT, sector, data });
    this.disk.set(data, Number(sector) * SECTOR_SIZE); // the device may complete it any time now
    this.#expect.set(head, { type: ReqType.OUT, what: `write @${sector}` });
    this.submitted++;
    return head;
  }

  /** Places a read of sectors no write touches (no kick). */
  read(sector: number, sectors: number): number {
    const len = sectors * SECTOR_SIZE;
    const data = this.disk.slice(sector * SECTOR_SIZE, sector * SECTOR_SIZE + len);
    const head = this.driver.enqueue({ type: ReqType.IN, sector: BigInt(sector), readLength: len });
    this.#expect.set(head, { type: ReqType.IN, data, what: `read @${sector}` });
    this.submitted++;
    return head;
  }

  /** A mix of `n` requests: writes of fresh sectors and reads of the first 64 (never written). */
  mix(n: number): number[] {
    return Array.from(
      { length: n },
      (_, i) => (i % 3 === 2 ? this.read(i % 60, 4) : this.write(8)),
    );
  }

  async start(n: number): Promise<void> {
    this.mix(n);
    await this.driver.kick();
  }

  /** Waits for every submitted request and checks its used-ring entry and data. */
  async finish(): Promise<void> {
    for (const head of this.driver.pendingHeads) this.check(head, await this.driver.wait(head));
    assert.equal(this.completed, this.submitted, "every request completed once");
    if (this.#image) {
      await this.driver.flush();
      assert.ok(equal(await Deno.readFile(this.#image), this.disk), "the disk holds every write");
    }
  }

  check(head: number, c: BlkCompletion): void {
    const e = this.#expect.get(head);
    assert.ok(e, `completion of unknown head ${head}`);
    this.#expect.delete(head);
    assert.equal(c.status, BlkStatus.OK, e.what);
    if (e.type === ReqType.OUT) {
      assert.equal(c.usedLen, 1, `${e.what}: used length is the status byte`);
    } else {
      assert.equal(c.usedLen, e.data!.length + 1, `${e.what}: used length`);
      assert.ok(c.data && equal(c.data, e.data!), `${e.what}: data`);
    }
    this.completed++;
  }

  moveTo(client: VfioUserClient): Promise<void> {
    return this.driver.moveTo(client);
  }

  close(): void {
    this.driver.close();
  }
}

/** The disk shared by source and destination, and its expected contents. */
class SharedDisk implements AsyncDisposable {
  constructor(readonly path: string, readonly contents: Uint8Array) {}
  [Symbol.asyncDispose](): Promise<void> {
    return Promise.resolve();
  }
}

/** The virtio-blk kit. */
export const virtioBlkKit: LifecycleKit = {
  async setup(dir) {
    const contents = randomBytes(IMAGE);
    await Deno.writeFile(`${dir}/disk.img`, contents);
    return new SharedDisk(`${dir}/disk.img`, contents);
  },
  device: (dir) => `virtio-blk,file=${dir}/disk.img`,
  async open(client: VfioUserClient, ram: GuestRam, shared) {
    const disk = shared as SharedDisk;
    const driver = await VirtioBlkDriver.create(client, {
      arena: new GuestArena(0n, ram.bytes),
      queueSize: 128,
    });
    return new BlkWorkload(driver, disk.contents, disk.path);
  },
};
