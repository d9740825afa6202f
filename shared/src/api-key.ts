/**
 * API key format: `rgrid_sk_` + 36 random base62 characters + 6-character checksum.
 *
 * The checksum (CRC32 of the body, base62) lets the CLI and secret scanners reject a typo'd or
 * truncated key without a round trip, as GitHub's tokens do. It is not a security control:
 * the 36 random characters (~214 bits) are.
 */
export const API_KEY_PREFIX = "rgrid_sk_";
export const API_KEY_BODY_LENGTH = 36;
const CHECKSUM_LENGTH = 6;
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

const crcTable = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(text: string): number {
  let crc = 0xffffffff;
  for (const byte of new TextEncoder().encode(text)) {
    crc = (crcTable[(crc ^ byte) & 0xff] ?? 0) ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

function toBase62(value: number, width: number): string {
  let out = "";
  let rest = value;
  while (rest > 0) {
    out = BASE62[rest % 62] + out;
    rest = Math.floor(rest / 62);
  }
  return out.padStart(width, "0");
}

export function apiKeyChecksum(body: string): string {
  return toBase62(crc32(body), CHECKSUM_LENGTH);
}

/** Random base62 text from a CSPRNG, without modulo bias (rejection sampling). */
export function randomBase62(length: number): string {
  let out = "";
  while (out.length < length) {
    const bytes = crypto.getRandomValues(new Uint8Array(length * 2));
    for (const byte of bytes) {
      if (byte < 248 && out.length < length) out += BASE62[byte % 62];
    }
  }
  return out;
}

export function generateApiKey(): string {
  const body = randomBase62(API_KEY_BODY_LENGTH);
  return `${API_KEY_PREFIX}${body}${apiKeyChecksum(body)}`;
}

export type ApiKeyFormatProblem = "missing_prefix" | "wrong_length" | "bad_characters" | "bad_checksum";

/** Checks the shape and checksum of a key; `null` when well-formed. */
export function apiKeyFormatProblem(key: string): ApiKeyFormatProblem | null {
  if (!key.startsWith(API_KEY_PREFIX)) return "missing_prefix";
  const rest = key.slice(API_KEY_PREFIX.length);
  if (rest.length !== API_KEY_BODY_LENGTH + CHECKSUM_LENGTH) return "wrong_length";
  if (!/^[0-9A-Za-z]+$/.test(rest)) return "bad_characters";
  const body = rest.slice(0, API_KEY_BODY_LENGTH);
  if (rest.slice(API_KEY_BODY_LENGTH) !== apiKeyChecksum(body)) return "bad_checksum";
  return null;
}

/** What may be shown of a key after creation: enough to recognise it, useless to an attacker. */
export function apiKeyDisplayPrefix(key: string): string {
  return key.slice(0, API_KEY_PREFIX.length + 6);
}
