/**
 * Secrets we issue (API keys, worker credentials, registration tokens) are stored only as
 * HMAC-SHA-256 under a server-side pepper.
 *
 * Why not bcrypt/argon2: these secrets are ~200 bits of CSPRNG output, so there is nothing to
 * brute-force and a slow hash buys no security; it would only burn the Worker's CPU budget (a few
 * ms per request) on every authenticated call. The pepper means a leaked D1 dump alone cannot
 * even confirm a guessed key.
 */
/** Importing the key costs more than the HMAC itself; signing a lease's URLs does it dozens of times. */
const importedKeys = new Map<string, Promise<CryptoKey>>();

function hmacKey(pepper: string): Promise<CryptoKey> {
  let key = importedKeys.get(pepper);
  if (!key) {
    key = crypto.subtle.importKey("raw", new TextEncoder().encode(pepper), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    importedKeys.set(pepper, key);
  }
  return key;
}

export async function hashSecret(pepper: string, secret: string): Promise<string> {
  if (!pepper) {
    throw new Error("API_KEY_PEPPER is not set: run `wrangler secret put API_KEY_PEPPER` (rgrid dev sets it locally)");
  }
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(pepper), new TextEncoder().encode(secret));
  return [...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Constant-time comparison of two hex digests, so response timing says nothing about a near match. */
export function digestsEqual(a: string, b: string): boolean {
  const encoder = new TextEncoder();
  const left = encoder.encode(a);
  const right = encoder.encode(b);
  if (left.byteLength !== right.byteLength) return false;
  return crypto.subtle.timingSafeEqual(left, right);
}
