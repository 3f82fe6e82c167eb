/**
 * A function's interrupts as a VMM wires them: eventfds handed to the server with SET_IRQS
 * (vfio-user "VFIO_USER_DEVICE_SET_IRQS"), MSI-X enabled or disabled in config space to match,
 * bounded waits that end when the connection does, the INTx unmask of a VMM's resample, and the
 * same eventfds handed to another server after a migration. Any device driver builds on it.
 *
 * @module
 */
import { IrqIndex, IrqSetFlags } from "../protocol/irq.ts";
import type { VfioUserClient } from "./client.ts";
import { EventFd } from "./eventfd.ts";
import { PciConfig } from "./pci.ts";
import { WaitTimeoutError } from "./errors.ts";
import { CapId } from "../spec/pci.ts";

/** How a driver learns about completions: MSI-X vectors, the INTx line, or by polling. */
export type InterruptMode = "msix" | "intx" | "poll";

const TRIGGER = IrqSetFlags.DATA_EVENTFD | IrqSetFlags.ACTION_TRIGGER;

/** The eventfds of one function's interrupts. */
export class DeviceInterrupts implements Disposable {
  readonly mode: InterruptMode;
  /** MSI-X eventfds by vector (msix mode). */
  readonly msix: readonly EventFd[];
  /** The INTx eventfd (intx mode). */
  readonly intx: EventFd | undefined;
  #client: VfioUserClient;

  private constructor(client: VfioUserClient, mode: InterruptMode, vectors: number) {
    this.#client = client;
    this.mode = mode;
    this.msix = mode === "msix" ? Array.from({ length: vectors }, () => new EventFd()) : [];
    this.intx = mode === "intx" ? new EventFd() : undefined;
  }

  /**
   * Wires `mode` on the function behind `client`: for "msix" `vectors` eventfds and MSI-X
   * enabled; otherwise MSI-X disabled (when the function has it) and, for "intx", an eventfd on
   * the INTx line.
   */
  static async setup(
    client: VfioUserClient,
    mode: InterruptMode,
    vectors = 1,
  ): Promise<DeviceInterrupts> {
    const irqs = new DeviceInterrupts(client, mode, vectors);
    try {
      await irqs.#assign();
      const pci = new PciConfig(client);
      const hasMsix = (await pci.capabilities()).some((c) => c.id === CapId.MSIX);
      if (mode === "msix" || hasMsix) await pci.setMsixEnabled(mode === "msix");
    } catch (e) {
      irqs.close();
      throw e;
    }
    return irqs;
  }

  /** The connection the interrupts are wired on. */
  get client(): VfioUserClient {
    return this.#client;
  }

  /** Hands the same eventfds to the server behind `client` (the device migrated there). */
  moveTo(client: VfioUserClient): Promise<void> {
    this.#client = client;
    return this.#assign();
  }

  /**
   * Waits until MSI-X vector `vector` (msix) or the INTx line (intx) fires, at most `timeoutMs`;
   * returns how often it fired, 0n when the wait ran out or in poll mode. Throws when the
   * connection closes.
   */
  async wait(vector: number, timeoutMs: number): Promise<bigint> {
    const fd = this.mode === "msix" ? this.msix[vector] : this.intx;
    if (!fd) return 0n;
    const what = this.mode === "msix" ? `MSI-X vector ${vector}` : "INTx";
    const c = this.#client;
    return await fd.wait(c.loop, timeoutMs, what, c.closedSignal).catch((e) => {
      if (!(e instanceof WaitTimeoutError)) throw e;
      return 0n;
    });
  }

  /** INTx end of interrupt, the unmask half of a VMM's resample (the device lowered the line). */
  unmaskIntx(): Promise<void> {
    const flags = IrqSetFlags.DATA_NONE | IrqSetFlags.ACTION_UNMASK;
    return this.#client.setIrqs({ index: IrqIndex.INTX, flags, start: 0, count: 1 });
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Closes the eventfds (the server keeps its copies until SET_IRQS or disconnect). */
  close(): void {
    for (const e of this.msix) e.close();
    this.intx?.close();
  }

  #assign(): Promise<void> {
    if (this.mode === "msix") {
      const fds = this.msix.map((e) => e.fd);
      return this.#client.setIrqs({
        index: IrqIndex.MSIX,
        flags: TRIGGER,
        start: 0,
        count: fds.length,
        fds,
      });
    }
    if (this.mode === "intx") {
      return this.#client.setIrqs({
        index: IrqIndex.INTX,
        flags: TRIGGER,
        start: 0,
        count: 1,
        fds: [this.intx!.fd],
      });
    }
    return Promise.resolve();
  }
}
