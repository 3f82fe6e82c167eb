/**
 * The fuzz corpus kept in the repository (tests/fuzz/corpus/): protocol messages whose outcome
 * (command and errno, a closed connection, broken framing) a fuzz run met first, and seeds of
 * guest ring states. `deno task fuzz --save-corpus` refreshes it; corpus_test.ts replays it in
 * `deno task test`.
 *
 * @module
 */
import type { FdKind, FuzzMessage } from "./messages.ts";

/** One protocol case: a message (hex) sent after VERSION and a DMA map, and its outcome then. */
export interface ProtocolCase {
  outcome: string;
  hex: string;
  fds: FdKind[];
  breaksStream: boolean;
  wantsReply: boolean;
}

/** A replayable block of guest ring states. */
export interface RingSeed {
  seed: number;
  states: number;
}

/** The corpus file's content. */
export interface Corpus {
  /** How it was made. */
  source: string;
  protocol: ProtocolCase[];
  rings: RingSeed[];
}

export const CORPUS_FILE = new URL("./corpus/corpus.json", import.meta.url);

/** A case from a generated message. */
export function protocolCase(m: FuzzMessage, outcome: string): ProtocolCase {
  return {
    outcome,
    hex: Array.from(m.bytes, (b) => b.toString(16).padStart(2, "0")).join(""),
    fds: m.fds,
    breaksStream: m.breaksStream,
    wantsReply: m.wantsReply,
  };
}

/** The bytes of a case. */
export function caseBytes(c: ProtocolCase): Uint8Array {
  return Uint8Array.from(c.hex.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** Reads the corpus. */
export function loadCorpus(): Corpus {
  return JSON.parse(Deno.readTextFileSync(CORPUS_FILE));
}

/** Writes the corpus (cases sorted by outcome, so diffs stay readable). */
export function saveCorpus(c: Corpus): void {
  c.protocol.sort((a, b) => a.outcome.localeCompare(b.outcome));
  Deno.writeTextFileSync(CORPUS_FILE, JSON.stringify(c, null, 1) + "\n");
}
