export * from "./api-error";
export * from "./api-key";
export * from "./auth";
export * from "./lifecycle";
export * from "./runtimes";
export * from "./executions";
export * from "./agent-protocol";
export * from "./batches";
