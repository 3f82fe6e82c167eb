/**
 * A Linux tap interface as a packet backend (kernel Documentation/networking/tuntap.rst): opens
 * /dev/net/tun, attaches with TUNSETIFF (IFF_TAP | IFF_NO_PI) to the interface `ifname` (an
 * existing persistent one, or a new one that lives as long as the fd), and moves one frame per
 * read()/write() on the non-blocking fd in the EventLoop. While the NIC cannot receive, the fd is
 * left unread (the kernel queues up to the interface's txqueuelen, then drops). Needs
 * CAP_NET_ADMIN, or ownership of a persistent tap.
 *
 * @module
 */
import { closeFd, cstr, errno, libc, SysError } from "../../sys/ffi.ts";
import { Errno } from "../../sys/errno.ts";
import type { EventLoop } from "../../sys/event_loop.ts";
import { MAX_FRAME, NetBackendBase } from "./backend.ts";
import { FdChannel } from "./fd_channel.ts";
import { logger } from "../../sys/log.ts";

/** ioctl TUNSETIFF = _IOW('T', 202, int). */
const TUNSETIFF = 0x400454can;
const IFF_TAP = 0x0002;
const IFF_NO_PI = 0x1000;
const O_RDWR = 2;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
/** struct ifreq: ifr_name[IFNAMSIZ=16], then the union (ifr_flags: short at 16); 40 bytes. */
const IFREQ_SIZE = 40;
const IFNAMSIZ = 16;
/** Frames read per readiness event before giving the loop back. */
const READ_BATCH = 64;

/** Options of {@link TapBackend.open}. */
export interface TapOptions {
  /** Interface name (at most 15 bytes; "%d" patterns let the kernel pick). */
  ifname: string;
  /** Path of the clone device (tests may point elsewhere). Default /dev/net/tun. */
  cloneDevice?: string;
}

/** Frames through a tap interface. */
export class TapBackend extends NetBackendBase {
  readonly kind = "tap";
  /** The interface name the kernel attached us to. */
  readonly ifname: string;
  readonly #chan: FdChannel;
  readonly #buf = new Uint8Array(MAX_FRAME);

  private constructor(loop: EventLoop, fd: number, ifname: string) {
    super();
    this.ifname = ifname;
    this.#chan = new FdChannel(loop, fd, {
      mode: "packet",
      onReadable: () => this.#readable(),
      onError: (e) => this.#fail(e),
    });
  }

  /** Opens (or creates) the tap interface; throws SysError with the reason on failure. */
  static open(loop: EventLoop, opts: TapOptions): TapBackend {
    const name = new TextEncoder().encode(opts.ifname);
    if (name.length === 0 || name.length >= IFNAMSIZ) {
      throw new Error(`tap: interface name "${opts.ifname}" must be 1-15 bytes`);
    }
    const path = opts.cloneDevice ?? "/dev/net/tun";
    const fd = libc.open(cstr(path), O_RDWR | O_NONBLOCK | O_CLOEXEC, 0);
    if (fd < 0) throw new SysError(`open ${path}`, errno());
    const ifr = new Uint8Array(IFREQ_SIZE);
    ifr.set(name);
    new DataView(ifr.buffer).setUint16(IFNAMSIZ, IFF_TAP | IFF_NO_PI, true);
    if (libc.ioctl(fd, TUNSETIFF, ifr) < 0) {
      const err = errno();
      closeFd(fd);
      throw new SysError(`TUNSETIFF ${opts.ifname}`, err);
    }
    const end = ifr.indexOf(0);
    const actual = new TextDecoder().decode(ifr.subarray(0, end < 0 ? IFNAMSIZ : end));
    return new TapBackend(loop, fd, actual);
  }

  /** A tap has carrier while it is open. */
  get linkUp(): boolean {
    return !this.closed;
  }

  get congested(): boolean {
    return this.#chan.congested;
  }

  send(frame: Uint8Array): boolean {
    return this.countSend(!this.closed && this.#chan.send(frame.slice()), frame.length);
  }

  writable(): Promise<void> {
    return this.#chan.writable();
  }

  protected shutdown(): void {
    this.#chan.close();
  }

  protected override pauseReading(): void {
    this.#chan.pauseInput();
  }

  protected override resumeReading(): void {
    this.#chan.resumeInput();
  }

  #readable(): void {
    for (let i = 0; i < READ_BATCH && !this.closed && this.mayRead(); i++) {
      const n = Number(libc.read(this.#chan.fd, this.#buf, BigInt(this.#buf.length)));
      if (n < 0) {
        const err = errno();
        if (err === Errno.EINTR) continue;
        if (err !== Errno.EAGAIN) this.#fail(new SysError("read tap", err));
        return;
      }
      if (n === 0) return;
      this.deliver(this.#buf.slice(0, n));
    }
  }

  #fail(e: SysError): void {
    // A tap fd does not fail in normal operation; stop rather than spin on a broken fd.
    if (this.closed) return;
    logger("net", "tap").error("tap {ifname}: {error}; closing", {
      ifname: this.ifname,
      error: e.message,
    });
    this.close();
    this.handlers?.linkChanged(false);
  }
}
