import { randomBase62 } from "../../shared/src/api-key";

/** Prefixed random ids (`exec_…`, `acct_…`) so an id says what it names in logs and support tickets. */
export function newId(prefix: "acct" | "key" | "wrk" | "exec" | "batch" | "art"): string {
  return `${prefix}_${randomBase62(20)}`;
}
