/**
 * Tests that move packets through tap interfaces run a probe script in a private network
 * namespace (`unshare --net`): never the host's real interfaces. This runs one and reads its
 * report, and gives the probes `ip`.
 *
 * @module
 */
import assert from "node:assert/strict";

/** Whether a private network namespace (root or user namespaces) and /dev/net/tun are usable. */
async function canUseNetns(): Promise<boolean> {
  try {
    Deno.statSync("/dev/net/tun");
    const out = await new Deno.Command("unshare", {
      args: ["--net", "ip", "link", "show", "lo"],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

/**
 * Runs the Deno script `probe` (a path) in a private network namespace and returns the JSON of
 * the last line it printed. A missing prerequisite is a failure, not a silent skip (CI runs as
 * root); so is a probe that fails or outlives `timeoutMs`.
 */
export async function runInNetns<Report>(probe: string, timeoutMs: number): Promise<Report> {
  assert.ok(
    await canUseNetns(),
    "needs /dev/net/tun and `unshare --net` (root or user namespaces)",
  );
  const out = await new Deno.Command("unshare", {
    args: ["--net", Deno.execPath(), "run", "--allow-all", probe],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  const err = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `probe failed (${out.code}): ${text}\n${err}`);
  return JSON.parse(text.split("\n").at(-1)!);
}

/** Runs `ip ARGS` (iproute2); throws with its error output when it fails. */
export async function ip(...args: string[]): Promise<void> {
  const out = await new Deno.Command("ip", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}
