/**
 * Test helpers for code on the event loop.
 *
 * @module
 */
import { EventLoop } from "./event_loop.ts";

/**
 * Runs `body` with an EventLoop running in the background, then stops it and waits until it
 * closed its fds. The loop stops by itself after `deadlineMs`, so a body that waits for an event
 * that never comes fails instead of hanging.
 */
export async function withLoop<T>(
  body: (loop: EventLoop) => Promise<T>,
  deadlineMs = 20_000,
): Promise<T> {
  const loop = new EventLoop();
  const guard = loop.setTimeout(() => loop.stop(), deadlineMs);
  const running = loop.run();
  try {
    return await body(loop);
  } finally {
    guard.cancel();
    loop.stop();
    await running;
  }
}
