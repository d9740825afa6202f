import { SELF } from "cloudflare:test";
import { localBootstrapResponseSchema, type LocalBootstrapResponse } from "../../shared/src/auth";

/** Creates (or reuses) the local account through the real bootstrap route and mints a fresh key. */
export async function bootstrapAccount(): Promise<LocalBootstrapResponse> {
  const response = await SELF.fetch("http://rgrid.test/local/bootstrap", {
    method: "POST",
    headers: { "X-Rgrid-Bootstrap": "test-bootstrap-token" },
  });
  if (response.status !== 201) throw new Error(`bootstrap failed: ${response.status} ${await response.text()}`);
  return localBootstrapResponseSchema.parse(await response.json());
}

export function api(path: string, key: string | null, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (key !== null) headers.set("Authorization", `Bearer ${key}`);
  return SELF.fetch(`http://rgrid.test/api/v1${path}`, { ...init, headers });
}
