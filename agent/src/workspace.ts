import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, mkdir, readdir } from "node:fs/promises";
import path from "node:path";
import type { OutputFile } from "../../shared/src/agent-protocol";
import { relativePathSchema } from "../../shared/src/executions";

/**
 * An attempt's scratch folder: `<state>/scratch/<label>/` holding `work/` (mounted as /work) and
 * room beside it for files that must not count as outputs (requirements, the process backend's HOME).
 */
export interface Scratch {
  root: string;
  workDir: string;
}

export async function createScratch(stateDir: string, label: string): Promise<Scratch> {
  const root = path.join(stateDir, "scratch", `${label.replace(/[^A-Za-z0-9_.-]/g, "_")}-${Date.now().toString(36)}`);
  const workDir = path.join(root, "work");
  await mkdir(workDir, { recursive: true, mode: 0o755 });
  return { root, workDir };
}

/**
 * The absolute path for a task file under `workDir`, with its folders created. The path is checked
 * again here (the schema already did) because the agent writes to it.
 */
export async function placeFile(workDir: string, relativePath: string): Promise<string> {
  const checked = relativePathSchema.safeParse(relativePath);
  if (!checked.success) throw new Error(`refusing a file path outside the work folder: ${JSON.stringify(relativePath)}`);
  const full = path.join(workDir, ...relativePath.split("/"));
  await mkdir(path.dirname(full), { recursive: true });
  return full;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export interface OutputLimits {
  maxFiles: number;
  maxBytes: number;
}

/** An output ready to upload: what the protocol carries, plus where it is on disk. */
export interface CollectedOutput extends OutputFile {
  absolutePath: string;
}

export type CollectResult = { ok: true; files: CollectedOutput[] } | { ok: false; message: string };

const MB = 1024 * 1024;
const formatMb = (bytes: number) => (bytes / MB).toFixed(bytes < MB ? 2 : 1);

/**
 * Every regular file under `workDir` that the script created or changed. `baseline` maps the paths
 * the agent placed (script, inputs) to their sha256: those are outputs only if their content changed.
 * Symbolic links are never followed (a link to /etc/passwd must not upload the host's file); each
 * one skipped is reported through `log`. Past the limits nothing is returned but the reason.
 */
export async function collectOutputs(
  workDir: string,
  baseline: ReadonlyMap<string, string>,
  limits: OutputLimits,
  log: (text: string) => void,
): Promise<CollectResult> {
  const candidates: { rel: string; abs: string; size: number }[] = [];
  const walk = async (dir: string, relDir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const abs = path.join(dir, entry.name);
      const rel = relDir ? `${relDir}/${entry.name}` : entry.name;
      // lstat, not stat: a link is reported as a link and never resolved.
      const st = await lstat(abs);
      if (st.isSymbolicLink()) {
        log(`Skipped output ${rel}: it is a symbolic link, and links are never followed`);
      } else if (st.isDirectory()) {
        await walk(abs, rel);
      } else if (st.isFile()) {
        candidates.push({ rel, abs, size: st.size });
      } else {
        log(`Skipped output ${rel}: not a regular file`);
      }
    }
  };
  await walk(workDir, "");

  const changed: { rel: string; abs: string; size: number; sha256?: string }[] = [];
  for (const c of candidates) {
    const placed = baseline.get(c.rel);
    if (placed === undefined) {
      changed.push(c);
      continue;
    }
    const sha256 = await sha256File(c.abs);
    if (sha256 !== placed) changed.push({ ...c, sha256 });
  }

  const totalBytes = changed.reduce((n, c) => n + c.size, 0);
  if (changed.length > limits.maxFiles || totalBytes > limits.maxBytes) {
    return {
      ok: false,
      message: `Output limit exceeded: ${changed.length} files / ${formatMb(totalBytes)} MB (limit ${limits.maxFiles} files / ${formatMb(limits.maxBytes)} MB); write fewer or smaller files`,
    };
  }

  const files: CollectedOutput[] = [];
  for (const c of changed) {
    if (!relativePathSchema.safeParse(c.rel).success) {
      log(`Skipped output ${JSON.stringify(c.rel)}: its name cannot be stored`);
      continue;
    }
    files.push({
      path: c.rel,
      absolutePath: c.abs,
      size_bytes: c.size,
      sha256: c.sha256 ?? (await sha256File(c.abs)),
      content_type: contentTypeFor(c.rel),
    });
  }
  return { ok: true, files };
}

const contentTypes: Record<string, string> = {
  txt: "text/plain; charset=utf-8",
  log: "text/plain; charset=utf-8",
  md: "text/markdown; charset=utf-8",
  csv: "text/csv; charset=utf-8",
  tsv: "text/tab-separated-values; charset=utf-8",
  json: "application/json",
  jsonl: "application/x-ndjson",
  ndjson: "application/x-ndjson",
  xml: "application/xml",
  html: "text/html; charset=utf-8",
  yaml: "application/yaml",
  yml: "application/yaml",
  py: "text/x-python; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  svg: "image/svg+xml",
  pdf: "application/pdf",
  zip: "application/zip",
  gz: "application/gzip",
  tar: "application/x-tar",
  parquet: "application/vnd.apache.parquet",
  mp3: "audio/mpeg",
  wav: "audio/wav",
  mp4: "video/mp4",
  webm: "video/webm",
  mkv: "video/x-matroska",
  mov: "video/quicktime",
};

/** Content type from the file extension; `application/octet-stream` when unknown. */
export function contentTypeFor(filePath: string): string {
  const ext = path.extname(filePath).slice(1).toLowerCase();
  return contentTypes[ext] ?? "application/octet-stream";
}
