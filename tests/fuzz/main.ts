/**
 * `deno task fuzz`: the session fuzzer over the real socket and in-process, and the guest ring
 * fuzzer. Prints the seed first (replay with --seed or VFUD_FUZZ_SEED) and the counts at the
 * end; exits 1 on any crash, hang, lost reply or device left unusable. A spin that never yields
 * is caught by a watchdog thread (the process is killed with the case named).
 *
 *   deno task fuzz [--seed=N] [--messages=N] [--rings=N] [--transport=both|socket|inproc]
 *                  [--save-corpus] [--case=N (replay one session of the seed)]
 *
 * Defaults: 1,000,000 messages (three quarters in-process, the rest over the socket), 100,000
 * ring states.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fuzzProtocol, inprocTarget, type ProtocolStats, socketTarget } from "./protocol.ts";
import { fuzzRings } from "./rings.ts";
import { seedFrom } from "./rng.ts";
import { Watchdog } from "../watchdog.ts";
import { type Corpus, type ProtocolCase, protocolCase, saveCorpus } from "./corpus.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seed: { type: "string" },
    messages: { type: "string", default: "1000000" },
    rings: { type: "string", default: "100000" },
    transport: { type: "string", default: "both" },
    "save-corpus": { type: "boolean", default: false },
    case: { type: "string" },
  },
});
const seed = seedFrom(values.seed);
const total = Number(values.messages);
const ringStates = Number(values.rings);
console.log(`fuzz: seed ${seed} (replay: deno task fuzz --seed=${seed} ...)`);

const watchdog = new Watchdog(60_000);
const cases: ProtocolCase[] = [];
const interesting = values["save-corpus"]
  ? (m: Parameters<typeof protocolCase>[0], outcome: string) => {
    if (cases.length < 400) cases.push(protocolCase(m, outcome));
  }
  : undefined;
let failed = false;
const t0 = performance.now();

const plan: ["inproc" | "socket", number][] = values.transport === "both"
  ? [["inproc", Math.ceil(total * 0.75)], ["socket", Math.floor(total * 0.25)]]
  : [[values.transport as "inproc" | "socket", total]];
const sum: Partial<Record<keyof ProtocolStats, number>> = {};
for (const [kind, messages] of plan) {
  if (messages <= 0) continue;
  const target = kind === "socket" ? await socketTarget() : await inprocTarget();
  const started = performance.now();
  let s: ProtocolStats;
  try {
    s = await fuzzProtocol({
      seed: kind === "socket" ? seed ^ 0x5a5a5a5a : seed,
      messages,
      target,
      beat: (w) => watchdog.beat(`${kind}: ${w}`),
      interesting,
      onlyCase: values.case === undefined ? undefined : Number(values.case),
    });
  } finally {
    await target.close();
  }
  const secs = (performance.now() - started) / 1000;
  const { failures, ...counts } = s;
  console.log(`fuzz ${kind}: ${JSON.stringify(counts)} in ${secs.toFixed(0)} s`);
  for (const f of failures) console.log(`  FAILURE ${f}`);
  if (s.crashes || s.hangs || s.lost) failed = true;
  for (const [k, v] of Object.entries(counts)) {
    const key = k as keyof ProtocolStats;
    sum[key] = key.startsWith("max") ? Math.max(sum[key] ?? 0, v) : (sum[key] ?? 0) + v;
  }
}

let rings = { states: 0, blk: 0, e1000: 0, refused: 0, broken: 0 };
if (ringStates > 0) {
  const started = performance.now();
  rings = await fuzzRings(seed, ringStates, (w) => watchdog.beat(`rings: ${w}`));
  const secs = (performance.now() - started) / 1000;
  console.log(`fuzz rings: ${JSON.stringify(rings)} in ${secs.toFixed(0)} s`);
  if (rings.broken) failed = true;
}
watchdog.stop();

if (values["save-corpus"]) {
  const corpus: Corpus = {
    source: `deno task fuzz --seed=${seed} --messages=${total} --rings=${ringStates}`,
    protocol: cases,
    rings: [0, 1, 2, 3].map((i) => ({ seed: (seed + i) >>> 0, states: 250 })),
  };
  saveCorpus(corpus);
  console.log(`fuzz: corpus saved (${cases.length} protocol cases)`);
}
const secs = ((performance.now() - t0) / 1000).toFixed(0);
console.log(
  `fuzz: seed ${seed}: ${sum.messages ?? 0} messages in ${sum.cases ?? 0} sessions ` +
    `(${sum.crashes ?? 0} crashes, ${sum.hangs ?? 0} hangs, ${sum.lost ?? 0} lost replies; ` +
    `largest REGION_READ/WRITE ${sum.maxReadCount ?? 0}/${sum.maxWriteCount ?? 0} bytes), ` +
    `${rings.states} ring states (${rings.broken} devices left unusable) in ${secs} s: ` +
    (failed ? "FAILED" : "ok"),
);
Deno.exit(failed ? 1 : 0);
