/**
 * Interrupts of one device: the eventfds the client installs with DEVICE_SET_IRQS and the
 * delivery rules behind the device's single `trigger()` (spec, "VFIO_USER_DEVICE_SET_IRQS";
 * semantics follow Linux VFIO's VFIO_DEVICE_SET_IRQS).
 *
 * INTx is level-triggered and automasked: a trigger asserts the line, signals the eventfd once
 * and masks; the client unmasks (ACTION_UNMASK, or its resample eventfd after the guest's EOI),
 * and if the line is still asserted then, it is signalled again. MSI-X vectors are masked by the
 * guest's table bits or by the client (ACTION_MASK); a masked vector's interrupt sets its PBA bit
 * and is delivered when the vector is unmasked.
 *
 * @module
 */
import { Errno, VfioUserError } from "../protocol/errors.ts";
import { IrqIndex, IrqInfoFlags, IrqSetFlags as F, type SetIrqsRequest } from "../protocol/irq.ts";
import { closeFd } from "../sys/ffi.ts";
import { drainEventfd, type EventLoop, signalEventfd } from "../sys/event_loop.ts";
import { C } from "../sys/layout.ts";
import { makeNonBlocking } from "../sys/socket.ts";
import { logger } from "../sys/log.ts";
import type { MsixState } from "../pci/msix.ts";
import { RecordReader, type RecordValue } from "../protocol/record.ts";

const log = logger("irqs");

/** What the controller needs to know of PCI config state. */
export interface IrqPciState {
  readonly msixEnabled: boolean;
  readonly intxDisabled: boolean;
  /** Mirrors the INTx line in the STATUS register's interrupt bit. */
  setInterruptStatus(asserted: boolean): void;
}

/** A decoded DEVICE_SET_IRQS request with the fds passed with it (the controller owns them). */
export interface SetIrqs extends SetIrqsRequest {
  fds: number[];
}

/** The interrupt state of one device. */
export class IrqController {
  readonly #loop: EventLoop;
  readonly #pci: IrqPciState;
  readonly #msix: MsixState | undefined;
  /** Per-index eventfds, -1 = none. */
  readonly #fds: number[][];
  #intxResampleFd = -1;
  /** Interrupts whose eventfd write failed (counter full, not an eventfd...). */
  #lost = 0;
  #intxAsserted = false;
  #intxMasked = false;

  constructor(loop: EventLoop, pci: IrqPciState, msix: MsixState | undefined, intx: boolean) {
    this.#loop = loop;
    this.#pci = pci;
    this.#msix = msix;
    this.#fds = [intx ? 1 : 0, 0, msix?.vectors ?? 0, 1, 1].map((n) => new Array(n).fill(-1));
    msix?.onUnmask((v) => this.#deliverPending(v));
  }

  /** Interrupts that could not be signalled (their eventfd refused the write). */
  get lostSignals(): number {
    return this.#lost;
  }

  /** Vector count of an index. */
  count(index: number): number {
    return this.#fds[index]?.length ?? 0;
  }

  /** GET_IRQ_INFO flags of an index. */
  infoFlags(index: number): number {
    const I = IrqInfoFlags;
    switch (index) {
      case IrqIndex.INTX:
        return I.EVENTFD | I.MASKABLE | I.AUTOMASKED;
      case IrqIndex.MSIX:
        return I.EVENTFD | I.MASKABLE | I.NORESIZE;
      default:
        return I.EVENTFD | I.NORESIZE;
    }
  }

  /** The device's one way to raise an interrupt. */
  trigger(vector: number): void {
    if (this.#pci.msixEnabled && this.#msix) {
      if (vector < 0 || vector >= this.#msix.vectors) return;
      if (this.#msix.isMasked(vector)) this.#msix.setPending(vector);
      else this.#signal(IrqIndex.MSIX, vector);
      return;
    }
    this.#intxAsserted = true;
    this.#pci.setInterruptStatus(true);
    this.#deliverIntx();
  }

  /** Deasserts the INTx line. */
  lowerIntx(): void {
    this.#intxAsserted = false;
    this.#pci.setInterruptStatus(false);
  }

  /** Re-evaluates INTx after the guest changed COMMAND.INTX_DISABLE. */
  commandChanged(): void {
    this.#deliverIntx();
  }

  #deliverIntx(): void {
    if (!this.#intxAsserted || this.#intxMasked || this.#pci.intxDisabled) return;
    if (this.#fds[IrqIndex.INTX].length === 0) return;
    this.#intxMasked = true; // AUTOMASKED: reported once until the client unmasks
    this.#signal(IrqIndex.INTX, 0);
  }

  #unmaskIntx(): void {
    this.#intxMasked = false;
    this.#deliverIntx();
  }

  #deliverPending(v: number): void {
    const m = this.#msix;
    if (!m || !this.#pci.msixEnabled || !m.isPending(v) || m.isMasked(v)) return;
    m.clearPending(v);
    this.#signal(IrqIndex.MSIX, v);
  }

  /** Signals a vector's eventfd; never blocks (the fd is non-blocking), never throws. */
  #signal(index: number, vector: number): void {
    const fd = this.#fds[index][vector];
    if (fd < 0 || signalEventfd(fd)) return;
    // A full counter (the client never reads it) or an fd that is no eventfd: the interrupt is
    // lost; waiting for room could block the daemon for as long as the client likes.
    if (this.#lost++ % 1000 === 0) {
      log.warn(
        "interrupt index {index} vector {vector} not delivered: its eventfd refused the " +
          "write ({lost} lost so far)",
        { index, vector, lost: this.#lost },
      );
    }
  }

  /** Applies a DEVICE_SET_IRQS request; takes ownership of `req.fds` on every path. */
  set(req: SetIrqs): void {
    try {
      // Received fds are the client's: a blocking one would let it stall every signal.
      for (const fd of req.fds) nonBlocking(fd);
      this.#apply(req);
    } finally {
      // Fds the request did not install are ours to close.
      for (const fd of req.fds) if (!this.#owns(fd)) closeFd(fd);
    }
  }

  #owns(fd: number): boolean {
    return fd === this.#intxResampleFd || this.#fds.some((v) => v.includes(fd));
  }

  #apply(req: SetIrqs): void {
    const vectors = this.#fds[req.index];
    if (!vectors) throw new VfioUserError(Errno.EINVAL, `IRQ index ${req.index}`);
    const data = req.flags & F.DATA_TYPE_MASK;
    const action = req.flags & F.ACTION_TYPE_MASK;
    if (data !== F.DATA_EVENTFD && req.fds.length) {
      throw new VfioUserError(Errno.EINVAL, "SET_IRQS: fds without DATA_EVENTFD");
    }
    if (action === F.ACTION_TRIGGER && data === F.DATA_NONE && req.count === 0) {
      return this.#disableAll(req.index);
    }
    if (req.start + req.count > vectors.length || (req.count === 0 && req.start !== 0)) {
      throw new VfioUserError(
        Errno.EINVAL,
        `SET_IRQS index ${req.index}: vectors [${req.start}, +${req.count}) of ${vectors.length}`,
      );
    }
    if (data === F.DATA_EVENTFD) return this.#setEventfds(req, action);
    for (let i = 0; i < req.count; i++) {
      if (data === F.DATA_BOOL && !req.data[i]) continue;
      this.#act(req.index, req.start + i, action);
    }
  }

  #setEventfds(req: SetIrqs, action: number): void {
    if (req.fds.length > req.count) {
      throw new VfioUserError(Errno.EINVAL, `SET_IRQS: ${req.fds.length} fds for ${req.count}`);
    }
    if (action === F.ACTION_UNMASK) {
      if (req.index !== IrqIndex.INTX || req.count !== 1) {
        throw new VfioUserError(Errno.EINVAL, "SET_IRQS: unmask eventfd only for INTx");
      }
      return this.#setResampleFd(req.fds[0] ?? -1);
    }
    if (action !== F.ACTION_TRIGGER) {
      throw new VfioUserError(Errno.EINVAL, "SET_IRQS: eventfds with ACTION_MASK");
    }
    const vectors = this.#fds[req.index];
    for (let i = 0; i < req.count; i++) {
      const v = req.start + i;
      closeFd(vectors[v]);
      // Fewer fds than vectors: the rest have no eventfd (the client sends -1 that way).
      vectors[v] = req.fds[i] ?? -1;
    }
    if (req.index === IrqIndex.INTX) this.#deliverIntx();
    if (req.index === IrqIndex.MSIX) {
      for (let i = 0; i < req.count; i++) this.#deliverPending(req.start + i);
    }
  }

  #setResampleFd(fd: number): void {
    if (this.#intxResampleFd >= 0) {
      this.#loop.remove(this.#intxResampleFd);
      closeFd(this.#intxResampleFd);
    }
    this.#intxResampleFd = fd;
    if (fd < 0) return;
    // Only a signal unmasks. A resample fd that hangs up (not an eventfd, or its writer gone)
    // is reported once by the loop and then dropped; the client can still unmask by message.
    this.#loop.add(fd, C.EPOLLIN, () => {
      if (drainEventfd(fd) > 0n) this.#unmaskIntx();
    });
  }

  #act(index: number, v: number, action: number): void {
    if (index === IrqIndex.INTX) {
      if (action === F.ACTION_MASK) this.#intxMasked = true;
      else if (action === F.ACTION_UNMASK) this.#unmaskIntx();
      else this.trigger(0);
    } else if (index === IrqIndex.MSIX && this.#msix) {
      if (action === F.ACTION_MASK) this.#msix.setExternalMask(v, true);
      else if (action === F.ACTION_UNMASK) this.#msix.setExternalMask(v, false);
      else this.#signal(index, v);
    } else if (action === F.ACTION_TRIGGER) {
      this.#signal(index, v);
    }
  }

  #disableAll(index: number): void {
    const vectors = this.#fds[index];
    for (let v = 0; v < vectors.length; v++) {
      closeFd(vectors[v]);
      vectors[v] = -1;
    }
    if (index === IrqIndex.INTX) {
      this.#setResampleFd(-1);
      this.#intxMasked = false;
    }
  }

  /** Closes every eventfd (client gone); device-side state (line level, PBA) is kept. */
  closeAll(): void {
    for (let i = 0; i < this.#fds.length; i++) this.#disableAll(i);
    this.#msix?.clearExternalMasks();
  }

  /**
   * The device-side interrupt state: the INTx line level (the MSI-X pending bits are saved with
   * the table). Eventfds and masks set with SET_IRQS are the client's: it sends them again.
   */
  save(): RecordValue {
    return { intx: this.#intxAsserted };
  }

  /** Loads a saved state (untrusted); delivery waits for {@link redeliver}. */
  restore(raw: unknown): void {
    const r = new RecordReader(raw, "irq");
    const intx = r.bool("intx");
    r.done();
    this.#intxAsserted = intx;
    this.#intxMasked = false;
    this.#pci.setInterruptStatus(intx);
  }

  /** Signals what is pending: an asserted INTx line, MSI-X vectors with their pending bit. */
  redeliver(): void {
    this.#deliverIntx();
    for (const v of this.#msix?.pendingVectors() ?? []) this.#deliverPending(v);
  }

  /** Device reset: line low, nothing pending (eventfds stay installed, as with VFIO). */
  reset(): void {
    this.lowerIntx();
    this.#intxMasked = false;
  }
}

function nonBlocking(fd: number): void {
  try {
    makeNonBlocking(fd);
  } catch (e) {
    throw new VfioUserError(Errno.EINVAL, `SET_IRQS: fd unusable: ${(e as Error).message}`);
  }
}
