import type { DrizzleD1Database } from "drizzle-orm/d1";
import type { EventType } from "../../shared/src/lifecycle";
import { events } from "./db/schema";

export interface NewEvent {
  accountId: string;
  type: EventType;
  message?: string;
  executionId?: string;
  attempt?: number;
}

/** Appends to the audit/lifecycle log. Messages must never contain secrets or env values. */
export async function recordEvent(db: DrizzleD1Database, event: NewEvent): Promise<void> {
  await db.insert(events).values({
    accountId: event.accountId,
    type: event.type,
    message: event.message ?? "",
    executionId: event.executionId ?? null,
    attempt: event.attempt ?? null,
    createdAt: Date.now(),
  });
}
