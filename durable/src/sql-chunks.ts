/** Bound parameters allowed in one statement, in D1 and in a Durable Object's SQLite alike. */
export const SQL_MAX_PARAMS = 100;

/** Splits rows so a multi-row statement with `paramsPerRow` parameters each stays under the cap. */
export function chunkRows<T>(rows: T[], paramsPerRow: number, reserved = 0): T[][] {
  const size = Math.max(1, Math.floor((SQL_MAX_PARAMS - reserved) / paramsPerRow));
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size));
  return out;
}
