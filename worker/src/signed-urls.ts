import { digestsEqual, hashSecret } from "./auth/secret-hash";

/**
 * Short-lived signed URLs for artifact bytes, so the CLI and agents move data straight to and from
 * storage without sending API keys along, and a leaked URL is useless after a few minutes.
 * The signature covers the operation, object key, expiry and (for outputs) the attempt, so a URL
 * for one object or attempt cannot be replayed for another.
 */
export const SIGNED_URL_TTL_MS = 15 * 60 * 1000;

export type SignedOperation = "get" | "put-blob" | "put-output";

export interface SignedTarget {
  op: SignedOperation;
  key: string;
  accountId: string;
  /** For put-output: the attempt that may write; checked against the scheduler at upload time. */
  attempt?: number;
  sha256?: string;
}

function payload(target: SignedTarget, expires: number): string {
  return [target.op, target.key, target.accountId, target.attempt ?? "", target.sha256 ?? "", expires].join("\n");
}

export async function signUrl(origin: string, pepper: string, target: SignedTarget, now = Date.now()): Promise<string> {
  const expires = now + SIGNED_URL_TTL_MS;
  const sig = await hashSecret(pepper, `signed-url\n${payload(target, expires)}`);
  const params = new URLSearchParams({ key: target.key, acct: target.accountId, exp: String(expires), sig });
  if (target.attempt !== undefined) params.set("att", String(target.attempt));
  if (target.sha256 !== undefined) params.set("sha", target.sha256);
  return `${origin}/files/${target.op}?${params}`;
}

/** Returns the target when the URL's signature is valid and unexpired; null otherwise. */
export async function verifySignedUrl(url: URL, op: SignedOperation, pepper: string): Promise<SignedTarget | null> {
  const key = url.searchParams.get("key");
  const accountId = url.searchParams.get("acct");
  const expires = Number(url.searchParams.get("exp"));
  const sig = url.searchParams.get("sig");
  if (!key || !accountId || !sig || !Number.isFinite(expires) || expires < Date.now()) return null;
  const att = url.searchParams.get("att");
  const sha = url.searchParams.get("sha");
  const target: SignedTarget = {
    op,
    key,
    accountId,
    ...(att !== null ? { attempt: Number(att) } : {}),
    ...(sha !== null ? { sha256: sha } : {}),
  };
  const expected = await hashSecret(pepper, `signed-url\n${payload(target, expires)}`);
  return digestsEqual(sig, expected) ? target : null;
}

/** Where things live in R2. Blobs are per account so one tenant can never reference another's. */
export const storageKeys = {
  blob: (accountId: string, sha256: string) => `blobs/${accountId}/sha256/${sha256}`,
  /** Per attempt, so a fenced attempt's late upload can never overwrite the output of the attempt that won. */
  output: (executionId: string, attempt: number, path: string) => `executions/${executionId}/attempts/${attempt}/outputs/${path}`,
};
