import fs from "node:fs";
import path from "node:path";
import { relativePathSchema } from "../../../shared/src/index";
import { UserError } from "../errors";

/**
 * Works out what `rgrid run script.py args…` sends, so the script sees in /work what it would see
 * in the local working folder:
 * - the script goes at its path relative to the cwd (its basename when it lives outside the cwd);
 * - every argument naming an existing file becomes an input at its path relative to the cwd (or
 *   `inputs/<basename>` outside it), and the argument is rewritten to that path;
 * - `requirements.txt` beside the script (or `--requirements FILE`) is sent for the dependency layer.
 */

export interface LocalFile {
  /** Absolute path on this machine. */
  localPath: string;
  /** Where it goes under /work (forward slashes). */
  remotePath: string;
  size: number;
}

export interface RunPlan {
  script: LocalFile;
  inputs: LocalFile[];
  /** Arguments as the script sees them remotely. */
  args: string[];
  requirements: LocalFile | undefined;
}

export interface PlanOptions {
  cwd: string;
  script: string;
  args: readonly string[];
  /** `--requirements FILE`; when absent, `requirements.txt` beside the script is used if it exists. */
  requirements?: string | undefined;
}

function regularFile(file: string): fs.Stats | undefined {
  try {
    const stat = fs.statSync(file);
    return stat.isFile() ? stat : undefined;
  } catch {
    return undefined;
  }
}

/** The path under /work for a local file: relative to the cwd when inside it, else `fallbackDir/<basename>`. */
export function remotePathFor(cwd: string, absolute: string, fallbackDir: string | undefined): string {
  const relative = path.relative(path.resolve(cwd), absolute);
  const inside = relative !== "" && !relative.startsWith("..") && !path.isAbsolute(relative);
  const remote = inside
    ? relative.split(path.sep).join("/")
    : fallbackDir
      ? `${fallbackDir}/${path.basename(absolute)}`
      : path.basename(absolute);
  if (!relativePathSchema.safeParse(remote).success) {
    throw new UserError(
      "bad_argument",
      `Cannot place ${absolute} in the remote working folder (as "${remote}").`,
      "Rename the file so its path has no backslashes, then run again.",
    );
  }
  return remote;
}

export function planRun(options: PlanOptions): RunPlan {
  const cwd = path.resolve(options.cwd);
  const scriptPath = path.resolve(cwd, options.script);
  const scriptStat = regularFile(scriptPath);
  if (!scriptStat) {
    const exists = fs.existsSync(scriptPath);
    throw new UserError(
      "bad_argument",
      exists ? `${options.script} is not a file.` : `Script not found: ${options.script} (looked in ${cwd}).`,
      "Pass the path of the script to run, relative to this folder or absolute, for example `rgrid run analysis.py data.csv`.",
    );
  }
  const script: LocalFile = { localPath: scriptPath, remotePath: remotePathFor(cwd, scriptPath, undefined), size: scriptStat.size };

  const byRemote = new Map<string, LocalFile>([[script.remotePath, script]]);
  const inputs: LocalFile[] = [];
  const args = options.args.map((arg) => {
    if (arg === "" || arg === "-") return arg;
    const absolute = path.resolve(cwd, arg);
    const stat = regularFile(absolute);
    if (!stat) return arg;
    const remotePath = remotePathFor(cwd, absolute, "inputs");
    const existing = byRemote.get(remotePath);
    if (existing && existing.localPath !== absolute) {
      throw new UserError(
        "bad_argument",
        `Two different files would both be placed at ${remotePath} remotely (${existing.localPath} and ${absolute}).`,
        "Files outside the current folder go to inputs/<name>; rename one of them, or run from a folder that contains both.",
      );
    }
    if (!existing) {
      const file = { localPath: absolute, remotePath, size: stat.size };
      byRemote.set(remotePath, file);
      inputs.push(file);
    }
    return remotePath;
  });

  let requirements: LocalFile | undefined;
  if (options.requirements !== undefined) {
    const file = path.resolve(cwd, options.requirements);
    const stat = regularFile(file);
    if (!stat) {
      throw new UserError(
        "bad_argument",
        `Requirements file not found: ${options.requirements}.`,
        "Pass an existing file to --requirements, or drop the option to use requirements.txt beside the script.",
      );
    }
    requirements = { localPath: file, remotePath: "requirements.txt", size: stat.size };
  } else {
    const beside = path.join(path.dirname(scriptPath), "requirements.txt");
    const stat = regularFile(beside);
    if (stat) requirements = { localPath: beside, remotePath: "requirements.txt", size: stat.size };
  }
  return { script, inputs, args, requirements };
}
