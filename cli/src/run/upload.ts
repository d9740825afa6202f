import fs from "node:fs";
import type { ApiClient } from "../api-client";
import { UserError } from "../errors";
import { sha256File } from "../hashing";
import { formatBytes } from "../human-format";
import { mapConcurrent } from "../map-concurrent";
import type { LocalFile } from "./plan";

/** Hashing is disk- and CPU-bound; a few at a time keeps a laptop responsive. */
const HASH_CONCURRENCY = 4;
/** Uploads wait on the network, so more may be in flight; signed URLs make each one independent. */
const UPLOAD_CONCURRENCY = 8;

export interface HashedFile extends LocalFile {
  sha256: string;
}

export interface UploadSummary {
  files: number;
  bytes: number;
}

export async function hashFiles(files: readonly LocalFile[]): Promise<HashedFile[]> {
  return mapConcurrent(files, HASH_CONCURRENCY, async (file) => ({ ...file, sha256: await sha256File(file.localPath) }));
}

/**
 * Uploads only the blobs the server lacks (content-addressed, so an unchanged file is never sent
 * twice), streamed from disk, UPLOAD_CONCURRENCY at a time. Each retry reopens the file.
 */
export async function uploadMissing(api: ApiClient, files: readonly HashedFile[]): Promise<UploadSummary> {
  const bySha = new Map(files.map((f) => [f.sha256, f]));
  if (bySha.size === 0) return { files: 0, bytes: 0 };
  const { missing } = await api.missingBlobs([...bySha.keys()]);
  let bytes = 0;
  await mapConcurrent(missing, UPLOAD_CONCURRENCY, async ({ sha256, upload_url }) => {
    const file = bySha.get(sha256);
    if (!file) return;
    const size = fs.statSync(file.localPath).size;
    const response = await api.fetchSigned(upload_url, {
      method: "PUT",
      headers: { "Content-Length": String(size), "Content-Type": "application/octet-stream" },
      body: () => fs.createReadStream(file.localPath),
    });
    if (!response.ok) {
      const error = await api.errorFromResponse(response);
      throw new UserError("api_error", `Uploading ${file.remotePath} failed: ${error.message}`, error.hint ?? "Run the command again.");
    }
    await response.body?.cancel();
    bytes += size;
  });
  return { files: missing.length, bytes };
}

/** The one line both `run` and `run --batch` print after uploading, or nothing when all was there. */
export function reportUpload(summary: UploadSummary, stderr: { write(text: string): unknown }): void {
  if (summary.files > 0) stderr.write(`Uploaded ${summary.files} file${summary.files === 1 ? "" : "s"} (${formatBytes(summary.bytes)}).\n`);
}
