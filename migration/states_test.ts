import assert from "node:assert/strict";
import { ARCS, DeviceState, NEXT, pathTo, REQUESTABLE, SAVING, stateName } from "./states.ts";

const ALL = [0, 1, 2, 3, 4, 5, 6, 7];
const { ERROR, STOP, RUNNING, STOP_COPY, RESUMING, PRE_COPY, RUNNING_P2P, PRE_COPY_P2P } =
  DeviceState;

/** Shortest paths over ARCS with no saving state inside (spec, "Complex State Transitions"). */
function derive(from: number, to: number): number[] | undefined {
  if (!REQUESTABLE.includes(to) || from === ERROR) return undefined;
  if (from === to) return [];
  if (from === STOP_COPY && to === PRE_COPY) return undefined; // refused by the spec
  const prev = new Map<number, number>([[from, -1]]);
  const queue = [from];
  while (queue.length) {
    const s = queue.shift()!;
    if (s !== from && SAVING.has(s)) continue; // may only end a path
    for (const n of ARCS.get(s)?.keys() ?? []) {
      if (prev.has(n)) continue;
      prev.set(n, s);
      if (n === to) {
        const path = [n];
        for (let p = s; p !== from; p = prev.get(p)!) path.unshift(p);
        return path;
      }
      queue.push(n);
    }
  }
  return undefined;
}

Deno.test("states: the direct arcs are exactly the spec's, minus P2P", () => {
  const arcs = [...ARCS].flatMap(([f, m]) =>
    [...m.keys()].map((t) => `${stateName(f)}>${stateName(t)}`)
  );
  assert.deepEqual(arcs.sort(), [
    "PRE_COPY>RUNNING",
    "PRE_COPY>STOP_COPY",
    "RESUMING>STOP",
    "RUNNING>PRE_COPY",
    "RUNNING>STOP",
    "STOP>RESUMING",
    "STOP>RUNNING",
    "STOP>STOP_COPY",
    "STOP_COPY>STOP",
  ]);
});

Deno.test("states: every (from, to) pair follows the shortest-path rule (64 pairs)", () => {
  for (const from of ALL) {
    for (const to of ALL) {
      const want = derive(from, to);
      const got = pathTo(from, to);
      assert.deepEqual(got, want, `${stateName(from)} -> ${stateName(to)}`);
      // NEXT is consistent with the path: its first step, or nothing.
      if (got?.length) assert.equal(NEXT.get(from)?.get(to), got[0]);
    }
  }
});

Deno.test("states: the transitions the spec singles out", () => {
  assert.deepEqual(pathTo(RUNNING, STOP_COPY), [STOP, STOP_COPY], "not through PRE_COPY");
  assert.deepEqual(pathTo(PRE_COPY, STOP), [RUNNING, STOP], "not through STOP_COPY");
  assert.deepEqual(pathTo(PRE_COPY, RESUMING), [RUNNING, STOP, RESUMING]);
  assert.deepEqual(pathTo(RESUMING, PRE_COPY), [STOP, RUNNING, PRE_COPY]);
  assert.deepEqual(pathTo(STOP_COPY, RUNNING), [STOP, RUNNING]);
  assert.equal(pathTo(STOP_COPY, PRE_COPY), undefined, "explicitly not allowed");
  for (const s of ALL) {
    assert.equal(pathTo(s, ERROR), undefined, "ERROR cannot be requested");
    assert.equal(pathTo(s, RUNNING_P2P), undefined, "no P2P");
    assert.equal(pathTo(s, PRE_COPY_P2P), undefined, "no P2P");
    if (s !== ERROR) assert.equal(pathTo(ERROR, s), undefined, "ERROR is left by reset only");
  }
  assert.deepEqual(pathTo(RESUMING, RESUMING), []);
});
