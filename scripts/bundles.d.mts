import type { BuildOptions } from "esbuild";

export declare const cliBundle: BuildOptions & { outfile: string };
export declare const agentBundle: BuildOptions & { outfile: string };
