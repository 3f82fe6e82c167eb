/**
 * The serving thread (see util/serving.ts): creates the device, serves the socket the main
 * thread hands over, and runs the event loop blocked in `epoll_wait` until asked to stop. Log
 * records go to the main thread's sinks.
 *
 * @module
 */
import { parseDeviceArg } from "../devices/mod.ts";
import { DeviceHost } from "../server/host.ts";
import { DEFAULT_SESSION_OPTIONS, Server } from "../server/server.ts";
import { drainEventfd, EventLoop, type Timer } from "../sys/event_loop.ts";
import { C } from "../sys/layout.ts";
import { closeLogging, logger, logWritesPending, setupLogging } from "../sys/log.ts";
import { ProtocolTrace } from "./trace.ts";
import { Bell, type DeviceInit, type SocketInit, type WorkerMessage } from "./serving.ts";

/** How long in-flight requests may run (with the client still connected) after a stop request. */
export const DRAIN_MS = 1000;
/** How often the request counter shown by the service status is refreshed. */
const STATS_MS = 1000;
/** Longest wait of the loop while a log write is outstanding. */
const LOG_POLL_MS = 2;

// deno-lint-ignore no-explicit-any
const scope = globalThis as any;

function post(m: WorkerMessage): void {
  scope.postMessage(m);
}

const inbox: unknown[] = [];
let waiting: ((m: unknown) => void) | undefined;

function nextMessage<T>(): Promise<T> {
  if (inbox.length) return Promise.resolve(inbox.shift() as T);
  return new Promise((r) => waiting = r as (m: unknown) => void);
}

/** Entry point of the serving Worker. */
export async function serveWorkerMain(): Promise<void> {
  scope.onmessage = (ev: MessageEvent) => {
    const w = waiting;
    waiting = undefined;
    if (w) w(ev.data);
    else inbox.push(ev.data);
  };
  const init = await nextMessage<DeviceInit>();
  // Records are written from this thread (no hop through the main thread: a line is out as
  // soon as the event that caused it, whatever the main thread is doing).
  await setupLogging(init.log);
  let trace: ProtocolTrace | undefined;
  try {
    if (init.trace !== undefined) {
      trace = new ProtocolTrace(init.trace);
      trace.install((e) => logger().error("protocol trace stopped: {error}", { error: e.message }));
    }
    const code = await serve(init);
    trace?.[Symbol.dispose]();
    await closeLogging(); // this thread's lines are out before the program ends
    post({ kind: "stopped", code });
    scope.close(); // ends the thread on its own (a CPU profile of it is written then)
  } catch (e) {
    trace?.[Symbol.dispose]();
    await closeLogging(100);
    post({ kind: "failed", message: (e as Error).message });
  }
}

async function serve(init: DeviceInit): Promise<number> {
  const log = logger();
  const { type, options } = parseDeviceArg(init.deviceSpec);
  const loop = new EventLoop();
  // A log write in flight completes only when this thread's event loop turns: do not block for
  // long meanwhile (the next lines wait for it).
  loop.beforeWait(() => logWritesPending() ? LOG_POLL_MS : false);
  loop.onHangup = (fd, events) =>
    log.warn("fd {fd} hung up (events 0x{events}): no longer watched", {
      fd,
      events: events.toString(16),
    });
  const device = type.create(options, { loop });
  const host = new DeviceHost(loop, device, init.maxBounce);
  const server = new Server(
    loop,
    host,
    { ...DEFAULT_SESSION_OPTIONS, dmaChunk: init.dmaChunk },
    log,
  );
  // the request counter of the service status, refreshed every second while a client is there
  const stats = new Float64Array(init.stats);
  let refresh: Timer | undefined;
  const count = () => {
    stats[0] = device.requests ?? -1;
    refresh = loop.setTimeout(count, STATS_MS);
  };
  server.onClient = (peer) => {
    refresh?.cancel();
    refresh = undefined;
    stats[0] = device.requests ?? -1;
    if (peer === undefined) post({ kind: "client" });
    else {
      post({ kind: "client", peer });
      if (device.requests !== undefined) refresh = loop.setTimeout(count, STATS_MS);
    }
  };
  post(
    device.summary !== undefined
      ? { kind: "created", summary: device.summary }
      : { kind: "created" },
  );

  const sock = await nextMessage<SocketInit>();
  if (sock.mode === "listening") server.listen(sock.fd);
  else {
    server.onLastSession = () => post({ kind: "stop", why: "client left" });
    server.serveConnected(sock.fd);
  }

  let code = 0;
  let stopping = false;
  // In-flight requests finish while the client can still answer their DMA; then the client is
  // dropped (what is left fails), the device quiesces, storage is flushed and the loop ends.
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.stopAccepting();
    const drained = new Promise<void>((r) => loop.setTimeout(r, DRAIN_MS));
    Promise.race([host.quiesce(), drained]).then(async () => {
      refresh?.cancel();
      server.stop();
      await host.quiesce();
      await device.flush?.();
      device.close();
    }).catch((e) => {
      log.error("stopping: {error}", { error: (e as Error).message });
      code = 1;
    }).finally(() => loop.stop());
  };
  const bell = new Int32Array(init.bell);
  loop.add(init.bellFd, C.EPOLLIN, () => {
    drainEventfd(init.bellFd);
    if (Atomics.and(bell, 0, ~Bell.STOP) & Bell.STOP) stop();
  });
  post({ kind: "serving" });
  await loop.runBlocking();
  return code;
}
