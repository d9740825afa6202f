import type { CommandContext } from "../context";
import { credentialsPath, listProfiles, selectProfileName } from "../credentials";
import { loadProjectConfig } from "../project-config";

/** `rgrid config`: the profile a command would use and the project defaults that apply here (offline). */
export function showConfig(ctx: CommandContext): void {
  const out = ctx.terminal.stdout;
  const profiles = listProfiles(ctx.home);
  const selected = selectProfileName({ flag: ctx.profileFlag, env: ctx.env }, profiles);
  out.write(
    `credentials: ${credentialsPath(ctx.home)}${profiles.length ? ` (profiles: ${profiles.join(", ")})` : " (none yet: run `rgrid init` or `rgrid dev`)"}\n`,
  );
  out.write(`profile:     ${selected ?? "(none selected)"}${selected && !profiles.includes(selected) ? " (not found)" : ""}\n`);
  const project = loadProjectConfig(ctx.cwd, ctx.env);
  if (!project.path) {
    out.write("project:     no .rgrid/config here or above\n");
    return;
  }
  out.write(`project:     ${project.path}\n`);
  const settings: Array<[string, string | number | undefined]> = [
    ["runtime", project.runtime],
    ["parallel", project.parallel],
    ["timeout", project.timeoutSeconds === undefined ? undefined : `${project.timeoutSeconds}s`],
    ["memory", project.memoryMb === undefined ? undefined : `${project.memoryMb}m`],
    ["cpus", project.cpus],
  ];
  for (const [key, value] of settings) if (value !== undefined) out.write(`  ${key.padEnd(9)} ${value}\n`);
}
