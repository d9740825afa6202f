import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { relativePathSchema, type ArtifactView } from "../../shared/src/index";
import type { ApiClient } from "./api-client";
import { UserError } from "./errors";
import { formatBytes } from "./human-format";
import { mapConcurrent } from "./map-concurrent";

/**
 * Downloads an execution's outputs into a folder at their relative paths: streamed to disk,
 * four at a time, each checked against its sha256 before it replaces anything, and never written
 * outside the folder (`..`, absolute paths and symlinked folders that lead out are refused).
 */

export interface DownloadedFile {
  path: string;
  size: number;
}

/** Where an output goes under `dir`; throws for a path that would land outside it. */
export function safeOutputPath(dir: string, relative: string): string {
  const root = path.resolve(dir);
  const target = path.resolve(root, ...relative.split("/"));
  if (!relativePathSchema.safeParse(relative).success || !target.startsWith(root + path.sep)) {
    throw new UserError(
      "unexpected_response",
      `Refusing to write output "${relative}": it would land outside ${root}.`,
      "Outputs are written only inside the target folder. Report this execution if you did not expect it.",
    );
  }
  return target;
}

function hashingPassThrough(hash: ReturnType<typeof createHash>, count: { bytes: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      count.bytes += chunk.length;
      callback(null, chunk);
    },
  });
}

async function downloadOne(api: ApiClient, artifact: ArtifactView, dir: string): Promise<DownloadedFile> {
  const target = safeOutputPath(dir, artifact.path);
  const parent = path.dirname(target);
  fs.mkdirSync(parent, { recursive: true });
  // A folder on the way may be a symlink that leads elsewhere: check where the parent really is.
  const realRoot = fs.realpathSync(path.resolve(dir));
  const realParent = fs.realpathSync(parent);
  if (realParent !== realRoot && !realParent.startsWith(realRoot + path.sep)) {
    throw new UserError(
      "bad_argument",
      `Refusing to write output "${artifact.path}": ${parent} leads outside ${realRoot} (a symlink).`,
      "Remove the symlink or download into another folder with --dir.",
    );
  }
  const temp = path.join(parent, `.${path.basename(target)}.${randomBytes(4).toString("hex")}.rgrid-part`);
  let lastError: unknown;
  for (let attempt = 1; attempt <= 2; attempt++) {
    try {
      const response = await api.fetchSigned(artifact.download_url);
      if (!response.ok || !response.body) {
        const error = await api.errorFromResponse(response);
        throw new UserError(
          "api_error",
          `Downloading ${artifact.path} failed: ${error.message}`,
          error.hint ?? "Run `rgrid download <id>` again.",
        );
      }
      const hash = createHash("sha256");
      const count = { bytes: 0 };
      await pipeline(
        Readable.fromWeb(response.body as WebReadableStream<Uint8Array>),
        hashingPassThrough(hash, count),
        fs.createWriteStream(temp),
      );
      const digest = hash.digest("hex");
      if (digest !== artifact.sha256) {
        throw new UserError(
          "unexpected_response",
          `Downloaded ${artifact.path} does not match its checksum (expected sha256 ${artifact.sha256.slice(0, 12)}…, got ${digest.slice(0, 12)}…).`,
          "The file was not saved. Run `rgrid download <id>` to try again.",
        );
      }
      fs.renameSync(temp, target);
      return { path: artifact.path, size: count.bytes };
    } catch (error) {
      fs.rmSync(temp, { force: true });
      lastError = error;
      // A checksum mismatch or an HTTP refusal will not change on a retry; a broken stream might.
      if (error instanceof UserError) throw error;
    }
  }
  throw lastError;
}

export async function downloadOutputs(api: ApiClient, artifacts: readonly ArtifactView[], dir: string): Promise<DownloadedFile[]> {
  // Check every path before writing any file, so a bad listing writes nothing.
  for (const artifact of artifacts) safeOutputPath(dir, artifact.path);
  return mapConcurrent(artifacts, 4, (artifact) => downloadOne(api, artifact, dir));
}

/** "✓ Downloaded: output.json (1.2 MB), results/x.csv (3 KB)" */
export function describeDownloads(files: readonly DownloadedFile[], dir: string, cwd: string): string {
  const where = path.resolve(dir) === path.resolve(cwd) ? "" : ` into ${path.relative(cwd, dir) || dir}`;
  return `✓ Downloaded${where}: ${files.map((f) => `${f.path} (${formatBytes(f.size)})`).join(", ")}`;
}

/**
 * After an execution ends: downloads its outputs into `dir` and says what came back, or, with
 * `remoteOnly`, says how many stayed remote and how to fetch them.
 */
export async function deliverOutputs(
  api: ApiClient,
  executionId: string,
  dir: string,
  options: { remoteOnly: boolean; cwd: string; stderr: { write(text: string): unknown } },
): Promise<void> {
  const { artifacts } = await api.listArtifacts(executionId);
  if (artifacts.length === 0) return;
  if (options.remoteOnly) {
    options.stderr.write(
      `${artifacts.length} output file${artifacts.length === 1 ? "" : "s"} kept remote. Fetch them with: rgrid download ${executionId}\n`,
    );
    return;
  }
  const downloaded = await downloadOutputs(api, artifacts, dir);
  options.stderr.write(`${describeDownloads(downloaded, dir, options.cwd)}\n`);
}

/**
 * The artifacts of an execution, or `null` after telling the user why there are none yet (still
 * running) or at all (it wrote nothing).
 */
export async function artifactsOrExplain(
  api: ApiClient,
  executionId: string,
  stderr: { write(text: string): unknown },
): Promise<ArtifactView[] | null> {
  const { artifacts } = await api.listArtifacts(executionId);
  if (artifacts.length > 0) return artifacts;
  const view = await api.getExecution(executionId);
  stderr.write(
    view.finished_at === null
      ? `${executionId} is ${view.status}; outputs appear when it finishes.\n`
      : `${executionId} wrote no output files.\n`,
  );
  return null;
}
