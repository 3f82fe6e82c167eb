/**
 * Prints a generated file: `man` (vfud.1, roff), `completion` (bash) or `help` (the --help
 * text). tools/install.sh and tools/deb.sh call it; all three come from one source (util/help.ts,
 * util/completion.ts).
 *
 *   deno run tools/generate.ts man >vfud.1
 *
 * @module
 */
import { manPage, usage } from "../util/help.ts";
import { bashCompletion } from "../util/completion.ts";

const GENERATORS: Record<string, () => string> = {
  man: manPage,
  completion: bashCompletion,
  help: usage,
};

if (import.meta.main) {
  const gen = GENERATORS[Deno.args[0] ?? ""];
  if (!gen || Deno.args.length !== 1) {
    console.error(`usage: generate.ts ${Object.keys(GENERATORS).join("|")}`);
    Deno.exit(2);
  }
  await Deno.stdout.write(new TextEncoder().encode(gen()));
}
