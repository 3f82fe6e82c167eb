/**
 * The two systemd interfaces vfud speaks, without libsystemd: socket activation
 * (`sd_listen_fds`: LISTEN_PID / LISTEN_FDS, fds from 3) and service notification (`sd_notify`:
 * one datagram to the AF_UNIX socket named by NOTIFY_SOCKET, "@" for the abstract namespace).
 *
 * @module
 */
import { sendDatagram } from "../sys/socket.ts";

/** First fd passed by socket activation (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;

/** Environment access (Deno.env, or a Map-backed stand-in in tests). */
export interface Env {
  get(key: string): string | undefined;
  delete(key: string): void;
}

/**
 * The fds systemd passed to this process by socket activation, or none. Like
 * `sd_listen_fds(1)`: LISTEN_PID must be this process (the variables are inherited by mistake
 * otherwise) and the variables are removed so children do not see them.
 */
export function listenFds(env: Env = Deno.env, pid: number = Deno.pid): number[] {
  const pidText = env.get("LISTEN_PID");
  const countText = env.get("LISTEN_FDS");
  for (const k of ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"]) env.delete(k);
  if (pidText === undefined || countText === undefined) return [];
  if (!/^\d+$/.test(pidText) || Number(pidText) !== pid) return [];
  if (!/^\d+$/.test(countText)) throw new Error(`LISTEN_FDS="${countText}" is not a number`);
  const n = Number(countText);
  return Array.from({ length: n }, (_, i) => LISTEN_FDS_START + i);
}

/**
 * Sends `state` (e.g. "READY=1\nSTATUS=serving") to the service manager, like `sd_notify`.
 * Returns false when there is no manager to tell (NOTIFY_SOCKET unset). Throws when the
 * socket is named but cannot be reached, or is not an AF_UNIX one (vsock is not supported).
 */
export function notify(state: string, env: Pick<Env, "get"> = Deno.env): boolean {
  const address = env.get("NOTIFY_SOCKET");
  if (!address) return false;
  if (!address.startsWith("/") && !address.startsWith("@")) {
    throw new Error(`NOTIFY_SOCKET="${address}": only AF_UNIX paths and @abstract names`);
  }
  sendDatagram(address, new TextEncoder().encode(state));
  return true;
}
