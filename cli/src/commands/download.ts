import fs from "node:fs";
import path from "node:path";
import { connect } from "../connect";
import type { CommandContext } from "../context";
import { artifactsOrExplain, describeDownloads, downloadOutputs } from "../download-outputs";
import { UserError } from "../errors";

export interface DownloadOptions {
  dir?: string | undefined;
}

/** `rgrid download ID [--dir D]`: fetches an execution's outputs into D (default: the current folder). */
export async function download(executionId: string, options: DownloadOptions, ctx: CommandContext): Promise<void> {
  const dir = path.resolve(ctx.cwd, options.dir ?? ".");
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) {
    throw new UserError(
      "bad_argument",
      `--dir ${options.dir ?? "."} is not a folder.`,
      "Pass a folder to download into (it is created if missing).",
    );
  }
  const api = connect(ctx);
  const artifacts = await artifactsOrExplain(api, executionId, ctx.terminal.stderr);
  if (!artifacts) return;
  fs.mkdirSync(dir, { recursive: true });
  const files = await downloadOutputs(api, artifacts, dir);
  ctx.terminal.stderr.write(`${describeDownloads(files, dir, ctx.cwd)}\n`);
}
