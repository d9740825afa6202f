import { createHash } from "node:crypto";
import fs from "node:fs";
import { pipeline } from "node:stream/promises";

/** sha256 of a file, streamed (never reads a large file into memory), as lowercase hex. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(fs.createReadStream(file), hash);
  return hash.digest("hex");
}
