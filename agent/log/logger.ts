// The structured logger every component uses: journald (with PRIORITY and one journal field per log field)
// under systemd, one JSON object per line elsewhere, and a ring of recent lines to stream back on failure.
import { journalUnavailableReason, sendJournal } from '../../native/systemd/journal.js';
import { journalFieldName, type SafeValue, safeValue } from './fields.js';
import { LineRing } from './ring.js';

export type LogLevel = 'debug' | 'info' | 'warning' | 'error';
export type LogFields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger that adds `fields` (e.g. component: 'init-server') to every line. */
  child(fields: LogFields): Logger;
  /** The last `limit` formatted lines, oldest first (one ring shared by a logger and all its children). */
  recent(limit?: number): string[];
}

export type LogSink = 'auto' | 'journal' | 'stdout' | 'stderr' | 'memory';

export interface LoggerOptions {
  sink?: LogSink;
  level?: LogLevel;
  /** SYSLOG_IDENTIFIER, default sextant-agent */
  identifier?: string;
  ringSize?: number;
}

const LEVEL_RANK: Record<LogLevel, number> = { debug: 0, info: 1, warning: 2, error: 3 };
// syslog priorities as journald expects them
const PRIORITY: Record<LogLevel, string> = { debug: '7', info: '6', warning: '4', error: '3' };
const LEVELS = Object.keys(LEVEL_RANK) as LogLevel[];

export const DEFAULT_IDENTIFIER = 'sextant-agent';
export const DEFAULT_RING_SIZE = 1000;

type Emit = (level: LogLevel, message: string, fields: Record<string, SafeValue>, line: string) => void;

interface Shared {
  minRank: number;
  ring: LineRing;
  emit: Emit;
}

/** True when this process was started by systemd and journald is there to take structured entries. */
export function runningUnderSystemd(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.INVOCATION_ID || env.JOURNAL_STREAM) && journalUnavailableReason() === undefined;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  if (!(level in LEVEL_RANK)) throw new Error(`log level must be one of ${LEVELS.join(', ')}, got ${level}`);
  const identifier = options.identifier ?? DEFAULT_IDENTIFIER;
  const shared: Shared = {
    minRank: LEVEL_RANK[level],
    ring: new LineRing(options.ringSize ?? DEFAULT_RING_SIZE),
    emit: () => {},
  };
  const { emit, fallback } = chooseSink(options.sink ?? 'auto', identifier);
  shared.emit = emit;
  const root = new StructuredLogger(shared, {});
  if (fallback) root.warn('journal unavailable, logging JSON lines to stdout', { reason: fallback });
  return root;
}

function chooseSink(sink: LogSink, identifier: string): { emit: Emit; fallback?: string } {
  switch (sink) {
    case 'memory':
      return { emit: () => {} };
    case 'stdout':
      return { emit: writeTo(process.stdout) };
    case 'stderr':
      return { emit: writeTo(process.stderr) };
    case 'journal': {
      const reason = journalUnavailableReason();
      if (reason !== undefined) return { emit: writeTo(process.stdout), fallback: reason };
      return { emit: journalEmit(identifier) };
    }
    case 'auto':
      return { emit: runningUnderSystemd() ? journalEmit(identifier) : writeTo(process.stdout) };
    default:
      throw new Error(`log sink must be one of auto, journal, stdout, stderr, memory, got ${String(sink)}`);
  }
}

function writeTo(stream: NodeJS.WritableStream): Emit {
  return (_level, _message, _fields, line) => {
    stream.write(`${line}\n`);
  };
}

function journalEmit(identifier: string): Emit {
  return (level, message, fields, line) => {
    const entry: Record<string, string> = {
      MESSAGE: message,
      PRIORITY: PRIORITY[level],
      SYSLOG_IDENTIFIER: identifier,
    };
    for (const [key, value] of Object.entries(fields)) entry[journalFieldName(key)] = String(value);
    let rc: number;
    try {
      rc = sendJournal(entry);
    } catch {
      rc = -1;
    }
    // Never lose a line silently: if journald refuses it, stderr still reaches the unit's log.
    if (rc < 0) process.stderr.write(`${line}\n`);
  };
}

class StructuredLogger implements Logger {
  constructor(
    private readonly shared: Shared,
    private readonly bound: Record<string, SafeValue>,
  ) {}

  debug(message: string, fields?: LogFields): void {
    this.log('debug', message, fields);
  }
  info(message: string, fields?: LogFields): void {
    this.log('info', message, fields);
  }
  warn(message: string, fields?: LogFields): void {
    this.log('warning', message, fields);
  }
  error(message: string, fields?: LogFields): void {
    this.log('error', message, fields);
  }

  child(fields: LogFields): Logger {
    return new StructuredLogger(this.shared, { ...this.bound, ...sanitize(fields) });
  }

  recent(limit?: number): string[] {
    return this.shared.ring.recent(limit);
  }

  private log(level: LogLevel, message: string, fields: LogFields | undefined): void {
    if (LEVEL_RANK[level] < this.shared.minRank) return;
    const all = fields === undefined ? this.bound : { ...this.bound, ...sanitize(fields) };
    const msg = String(message);
    const line = formatLine(level, msg, all);
    this.shared.ring.push(line);
    this.shared.emit(level, msg, all, line);
  }
}

const HEADER_KEYS = new Set(['time', 'level', 'msg']);

/** {"time","level","msg",...fields}; a field named like a header key is kept as field_<key>. */
function formatLine(level: LogLevel, msg: string, fields: Record<string, SafeValue>): string {
  const record: Record<string, SafeValue> = { time: new Date().toISOString(), level, msg };
  for (const [key, value] of Object.entries(fields))
    record[HEADER_KEYS.has(key) ? `field_${key}` : key] = value;
  return JSON.stringify(record);
}

function sanitize(fields: LogFields): Record<string, SafeValue> {
  const out: Record<string, SafeValue> = {};
  for (const [key, value] of Object.entries(fields)) {
    const safe = safeValue(key, value);
    if (safe !== undefined) out[key] = safe;
  }
  return out;
}
