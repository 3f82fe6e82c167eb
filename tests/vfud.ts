/**
 * How the tests run vfud: the repository root, the entry point, and the command line of
 * `deno task start` (deno.json) with main.ts made absolute, so every test runs vfud with exactly
 * the permissions a user's `deno task start` grants.
 *
 * @module
 */
import config from "../deno.json" with { type: "json" };

/** The repository root (with a trailing slash). */
export const REPO_ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);

/** vfud's entry point. */
export const MAIN_TS = `${REPO_ROOT}main.ts`;

/** The command that runs vfud: `deno task start`'s, from any directory. Append vfud's arguments. */
export const VFUD: readonly string[] = [
  Deno.execPath(),
  ...config.tasks.start.split(/\s+/).slice(1).map((a) => a === "main.ts" ? MAIN_TS : a),
];
