/**
 * The service status vfud shows systemd (`systemctl status` "Status:" line, sd_notify STATUS=):
 * what is served where, whether a client is connected and who it is, and while one is, the
 * rate of device requests, refreshed every few seconds. Nothing runs when there is no service
 * manager to tell (NOTIFY_SOCKET unset).
 *
 * @module
 */

/** How often the request rate is refreshed while a client is connected. */
export const STATUS_INTERVAL_MS = 5000;

/** What the reporter needs: a way to tell systemd, and the device's request counter. */
export interface StatusEnv {
  /** Sends one sd_notify message; false when there is no service manager. */
  notify(state: string): boolean;
  /** Requests the device took so far (undefined: the device does not count them). */
  requests(): number | undefined;
  /** Milliseconds, monotonic (tests pass a fake clock). */
  now?(): number;
}

/** Keeps the STATUS= line of one served device current. */
export class ServiceStatus {
  readonly #env: StatusEnv;
  readonly #serving: string;
  readonly #intervalMs: number;
  #client: string | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #last = { at: 0, requests: 0 };
  #active = true;

  /** `serving`: e.g. "serving virtio-blk on /run/vfud/disk0.sock (disk0.img: 10 GiB, ...)". */
  constructor(env: StatusEnv, serving: string, intervalMs = STATUS_INTERVAL_MS) {
    this.#env = env;
    this.#serving = serving;
    this.#intervalMs = intervalMs;
  }

  /** READY=1 with the first status. */
  ready(): void {
    this.#send(`READY=1\nSTATUS=${this.#serving}; waiting for a client`);
  }

  /** A client connected: `peer` says who ("pid 1234 (qemu-system-x86), uid 0, gid 0"). */
  clientConnected(peer: string): void {
    this.#client = peer;
    this.#send(`STATUS=${this.#serving}; client ${peer}`);
    this.#mark();
    if (this.#active && this.#timer === undefined && this.#env.requests() !== undefined) {
      this.#timer = setInterval(() => this.tick(), this.#intervalMs);
    }
  }

  /** The client left. */
  clientLeft(): void {
    this.#client = undefined;
    this.#stopTimer();
    this.#send(`STATUS=${this.#serving}; waiting for a client`);
  }

  /** Refreshes the request rate (called by the timer). */
  tick(): void {
    if (this.#client === undefined) return;
    const prev = this.#last;
    this.#mark();
    const seconds = (this.#last.at - prev.at) / 1000;
    const rate = seconds > 0 ? Math.round((this.#last.requests - prev.requests) / seconds) : 0;
    this.#send(`STATUS=${this.#serving}; client ${this.#client}; ${rate} requests/s`);
  }

  /** Stops the timer and every later update (shutdown: STOPPING=1 is the last word). */
  stop(): void {
    this.#active = false;
    this.#stopTimer();
  }

  #mark(): void {
    this.#last = {
      at: this.#env.now?.() ?? performance.now(),
      requests: this.#env.requests() ?? 0,
    };
  }

  #stopTimer(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #send(state: string): void {
    if (!this.#active) return;
    // No service manager: nothing to keep up to date (and no timer).
    if (!this.#env.notify(state)) {
      this.#active = false;
      this.#stopTimer();
    }
  }
}
