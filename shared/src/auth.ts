import { z } from "zod";

export const validateKeyResponseSchema = z.object({
  account_id: z.string(),
  email: z.string(),
  credits_balance_micros: z.number().int(),
});
export type ValidateKeyResponse = z.infer<typeof validateKeyResponseSchema>;

export const healthResponseSchema = z.object({
  status: z.enum(["healthy", "unhealthy"]),
  database: z.enum(["connected", "unavailable"]),
  storage: z.enum(["connected", "unavailable"]),
  version: z.string(),
});
export type HealthResponse = z.infer<typeof healthResponseSchema>;

/** `POST /local/bootstrap` (local mode only): mints the local account, an API key and an agent registration token. */
export const localBootstrapResponseSchema = z.object({
  account_id: z.string(),
  email: z.string(),
  api_key: z.string(),
  registration_token: z.string(),
});
export type LocalBootstrapResponse = z.infer<typeof localBootstrapResponseSchema>;
