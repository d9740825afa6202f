import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";

/**
 * The worker credential, saved under the state dir (mode 600) so a restarted agent reuses it
 * instead of spending another one-time registration token. It records which control plane issued
 * it, so pointing the agent at another one registers afresh.
 */
const savedCredentialSchema = z.object({
  api_url: z.string(),
  worker_id: z.string(),
  account_id: z.string(),
  credential: z.string().min(1),
});
export type SavedCredential = z.infer<typeof savedCredentialSchema>;

export const credentialFile = (stateDir: string) => path.join(stateDir, "credential.json");

/** The saved credential for `apiUrl`, or null when there is none (or it belongs to another control plane). */
export async function loadCredential(stateDir: string, apiUrl: string): Promise<SavedCredential | null> {
  let text: string;
  try {
    text = await readFile(credentialFile(stateDir), "utf8");
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return null;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  const parsed = savedCredentialSchema.safeParse(json);
  if (!parsed.success || parsed.data.api_url !== apiUrl) return null;
  return parsed.data;
}

export async function saveCredential(stateDir: string, saved: SavedCredential): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const file = credentialFile(stateDir);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(saved, null, 2)}\n`, { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}
