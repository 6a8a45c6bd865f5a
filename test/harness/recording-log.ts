// A Logger that keeps each line as "level message {fields}", so tests can assert on what was (not) logged.
import type { Logger } from '../../agent/log/index.js';

export type RecordingLog = Logger & { lines: string[] };

export function recordingLog(): RecordingLog {
  const lines: string[] = [];
  const record =
    (level: string) =>
    (message: string, fields?: Record<string, unknown>): void => {
      lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
    };
  const log: RecordingLog = {
    lines,
    debug: record('debug'),
    info: record('info'),
    warn: record('warn'),
    error: record('error'),
    child: () => log,
    recent: (limit?: number) => lines.slice(-(limit ?? lines.length)),
  };
  return log;
}
