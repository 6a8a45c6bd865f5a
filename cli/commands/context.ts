// What every command receives besides its own options: the workspace and where to write.

export interface Writer {
  write(chunk: string): unknown;
}

export interface CommandContext {
  /** Absolute path of the workspace directory (the current directory unless --workspace). */
  workspace: string;
  /** Results: what a script would parse. */
  stdout: Writer;
  /** Progress, warnings and errors. */
  stderr: Writer;
  /** One line of progress for long steps (to stderr, with the time since the command started). */
  progress(message: string): void;
  env: NodeJS.ProcessEnv;
}

export interface ContextOptions {
  workspace: string;
  stdout?: Writer;
  stderr?: Writer;
  env?: NodeJS.ProcessEnv;
  /** Clock for the progress prefix; tests fix it. */
  now?: () => number;
}

export function createContext(options: ContextOptions): CommandContext {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  const now = options.now ?? Date.now;
  const start = now();
  return {
    workspace: options.workspace,
    stdout,
    stderr,
    env: options.env ?? process.env,
    progress: (message) => {
      const seconds = ((now() - start) / 1000).toFixed(1).padStart(6);
      stderr.write(`[${seconds}s] ${message}\n`);
    },
  };
}

/** Wrong command line: the caller prints it with a usage hint and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
  constructor(
    message: string,
    /** The command whose help to point at, e.g. "config generate"; empty for the top level. */
    readonly command = '',
  ) {
    super(message);
  }
}
