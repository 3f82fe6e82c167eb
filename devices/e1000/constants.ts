/**
 * The 82540EM numbers, defined once in spec/e1000.ts (shared with the client's driver).
 *
 * @module
 */
export * from "../../spec/e1000.ts";
