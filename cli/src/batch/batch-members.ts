import type { ExecutionView } from "../../../shared/src/index";
import { outputFolderNames } from "./output-folders";

/**
 * Which input each execution of a batch ran on, worked out from the executions alone, so that
 * `rgrid watch` and `rgrid retry --batch` (which never saw the command line) put outputs where
 * `rgrid run --batch` did.
 */

export interface BatchMember {
  /** The batch input's path under /work (relative to where `rgrid run` ran), if one was found. */
  input: string | undefined;
  /** Its folder under the output root (see `outputFolderNames`); the execution id when no input was found. */
  folder: string;
}

/**
 * The executions that count: those no retry in the same batch has superseded (what the batch's
 * counts cover, too).
 */
export function currentExecutions(views: readonly ExecutionView[]): ExecutionView[] {
  const superseded = new Set(views.map((v) => v.retry_of).filter((id): id is string => id !== null));
  return views.filter((v) => !superseded.has(v.id));
}

/**
 * The argument position that holds the batch input: one naming an input of every execution, and
 * preferably one whose value differs between them (a file passed to every execution, such as a
 * config, is the same everywhere). `rgrid run --batch` puts the input first, or where `{}` was.
 */
export function batchInputIndex(views: readonly ExecutionView[]): number | undefined {
  const originals = views.filter((v) => v.retry_of === null);
  const sample = originals.length > 0 ? originals : views;
  const first = sample[0];
  if (!first) return undefined;
  const candidates: number[] = [];
  for (let i = 0; i < first.args.length; i++) {
    if (sample.every((v) => v.inputs.some((input) => input.path === v.args[i]))) candidates.push(i);
  }
  return candidates.find((i) => new Set(sample.map((v) => v.args[i])).size > 1) ?? candidates[0];
}

/** Each execution's batch input and output folder, by execution id. */
export function batchMembers(views: readonly ExecutionView[]): Map<string, BatchMember> {
  const index = batchInputIndex(views);
  const inputOf = (v: ExecutionView) => (index === undefined ? undefined : v.args[index]);
  const folders = outputFolderNames(views.map(inputOf).filter((i): i is string => i !== undefined));
  return new Map(
    views.map((v) => {
      const input = inputOf(v);
      return [v.id, { input, folder: (input !== undefined ? folders.get(input) : undefined) ?? v.id }];
    }),
  );
}
