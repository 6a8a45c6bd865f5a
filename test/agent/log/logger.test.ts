import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { createLogger, journalFieldName, REDACTED } from '../../../agent/log/index.js';
import { JOURNAL_SOCKET } from '../../../native/systemd/journal.js';
import {
  type DgramReader,
  fakeJournalSkip,
  parseJournalDatagram,
  runWithFakeJournal,
  startDgramReader,
} from '../../native/systemd/fake-socket.js';

const LINES = new URL('./fixtures/log-lines.ts', import.meta.url).pathname;

function parse(lines: string[]): Record<string, unknown>[] {
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Captures what fn writes to a process stream, synchronously. */
function capture(stream: NodeJS.WriteStream, fn: () => void): string[] {
  const original = stream.write;
  let out = '';
  stream.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  }) as typeof stream.write;
  try {
    fn();
  } finally {
    stream.write = original;
  }
  return out.split('\n').filter((l) => l !== '');
}

function runChild(args: string[], env: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', LINES, ...args],
      { env, encoding: 'utf8' },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve({ stdout, stderr }),
    );
  });
}

function envWithout(...keys: string[]): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of keys) delete env[k];
  return env;
}

describe('memory sink and ring buffer', () => {
  it('formats {"time","level","msg",...fields} and filters below the level', () => {
    const log = createLogger({ sink: 'memory', level: 'info' });
    log.debug('hidden');
    log.info('hello', { a: 1, b: true, c: 'x', d: undefined });
    log.warn('careful');
    log.error('broken', { time: 'field named like a header' });
    const lines = parse(log.recent());
    assert.equal(lines.length, 3);
    assert.deepEqual(Object.keys(lines[0]!), ['time', 'level', 'msg', 'a', 'b', 'c']);
    assert.equal(lines[0]!.level, 'info');
    assert.deepEqual([lines[1]!.level, lines[2]!.level], ['warning', 'error']);
    assert.equal(lines[2]!.field_time, 'field named like a header');
    assert.ok(!Number.isNaN(Date.parse(lines[0]!.time as string)));
  });

  it('children add their fields to every line and share one ring', () => {
    const log = createLogger({ sink: 'memory', level: 'debug', ringSize: 3 });
    const init = log.child({ component: 'init-server' });
    const step = init.child({ step: 'kubeadm' });
    log.info('one');
    init.info('two');
    step.debug('three', { component: 'overridden' });
    step.info('four');
    assert.deepEqual(
      parse(init.recent()).map((l) => [l.msg, l.component, l.step]),
      [
        ['two', 'init-server', undefined],
        ['three', 'overridden', 'kubeadm'],
        ['four', 'init-server', 'kubeadm'],
      ],
    );
    assert.deepEqual(
      parse(log.recent(2)).map((l) => l.msg),
      ['three', 'four'],
    );
    assert.deepEqual(log.recent(0), []);
    assert.equal(log.recent(100).length, 3);
  });

  it('rejects a bad level, sink or ring size with the option named', () => {
    assert.throws(() => createLogger({ level: 'loud' as never }), /log level/);
    assert.throws(() => createLogger({ sink: 'syslog' as never }), /log sink/);
    assert.throws(() => createLogger({ sink: 'memory', ringSize: 0 }), /ringSize/);
  });
});

describe('redaction', () => {
  it('never prints values of secret-named fields or bytes', () => {
    const log = createLogger({ sink: 'memory' });
    const secretish = {
      secret: 's1',
      masterSecret: 's2',
      initSecret: 's3',
      token: 's4',
      bootstrapToken: 's5',
      password: 's6',
      diskKey: 's7',
      key: 's8',
    };
    log.child({ apiKey: 's9' }).info('with secrets', secretish);
    log.info('with bytes', {
      blob: Buffer.from('s10') as unknown as string,
      arr: new Uint8Array(4) as unknown as string,
    });
    const [first, second] = log.recent();
    for (let i = 1; i <= 10; i++) {
      assert.ok(!first!.includes(`"s${i}"`) && !second!.includes(`s${i}`), `value s${i} leaked`);
    }
    const parsed = parse([first!, second!]);
    for (const k of [...Object.keys(secretish), 'apiKey']) assert.equal(parsed[0]![k], REDACTED);
    assert.equal(parsed[1]!.blob, '[3 bytes]');
    assert.equal(parsed[1]!.arr, '[4 bytes]');
  });

  it('keeps harmless fields and turns odd runtime values into strings', () => {
    const log = createLogger({ sink: 'memory' });
    log.info('odd', {
      component: 'join',
      n: Number.NaN,
      e: new Error('boom') as unknown as string,
      z: null as unknown as string,
      big: 5n as unknown as string,
    });
    const [line] = parse(log.recent());
    assert.deepEqual(
      [line!.component, line!.n, line!.e, line!.z, line!.big],
      ['join', 'NaN', 'boom', 'null', '5'],
    );
  });
});

describe('stdout and stderr sinks', () => {
  it('writes one JSON object per line to stdout', () => {
    const log = createLogger({ sink: 'stdout' }).child({ component: 'cli' });
    const lines = capture(process.stdout, () => {
      log.info('first', { n: 1 });
      log.error('second');
    });
    assert.deepEqual(
      parse(lines).map((l) => [l.level, l.msg, l.component]),
      [
        ['info', 'first', 'cli'],
        ['error', 'second', 'cli'],
      ],
    );
    assert.deepEqual(lines, log.recent());
  });

  it('writes to stderr when asked', () => {
    const log = createLogger({ sink: 'stderr' });
    const lines = capture(process.stderr, () => log.warn('to stderr'));
    assert.equal(parse(lines)[0]!.msg, 'to stderr');
  });

  it("'auto' outside systemd logs JSON lines to stdout", async () => {
    const { stdout } = await runChild(['auto'], envWithout('INVOCATION_ID', 'JOURNAL_STREAM'));
    const lines = parse(stdout.trim().split('\n'));
    assert.deepEqual(
      lines.map((l) => l.msg),
      ['debug line', 'node lock taken', 'retrying', 'kubeadm failed'],
    );
    assert.equal(lines[1]!.initSecret, REDACTED);
    assert.equal(lines[1]!.message, 'shadow');
  });

  it("'journal' without a journal falls back to stdout and says why", {
    skip: existsSync(JOURNAL_SOCKET) && 'journald runs here',
  }, () => {
    const lines = capture(process.stdout, () => createLogger({ sink: 'journal' }).info('after fallback'));
    const [warning, line] = parse(lines);
    assert.equal(warning!.level, 'warning');
    assert.match(warning!.reason as string, /journal socket/);
    assert.equal(line!.msg, 'after fallback');
  });
});

describe('journal sink against a fake journald', { skip: fakeJournalSkip }, () => {
  let reader: DgramReader;
  before(async () => {
    reader = await startDgramReader();
  });
  after(async () => {
    await reader.stop();
  });

  it("'auto' under systemd sends MESSAGE, PRIORITY, SYSLOG_IDENTIFIER and one field per log field", async () => {
    const env = { ...envWithout('JOURNAL_STREAM'), INVOCATION_ID: '0123456789abcdef' };
    const r = await runWithFakeJournal(reader, LINES, ['auto'], env);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout, '', 'nothing goes to stdout when the journal takes the lines');
    const entries = (await reader.waitFor(4)).map(parseJournalDatagram);
    assert.deepEqual(
      entries.map((e) => [e.MESSAGE, e.PRIORITY, e.SYSLOG_IDENTIFIER, e.COMPONENT]),
      [
        ['debug line', '7', 'sextant-test', 'init-server'],
        ['node lock taken', '6', 'sextant-test', 'init-server'],
        ['retrying', '4', 'sextant-test', 'init-server'],
        ['kubeadm failed', '3', 'sextant-test', 'init-server'],
      ],
    );
    assert.equal(entries[0]!.STEP, '1');
    assert.equal(entries[1]!.CLUSTER_ID, 'c0ffee');
    assert.equal(entries[1]!.INIT_SECRET, REDACTED);
    assert.equal(entries[1]!.SEXTANT_MESSAGE, 'shadow');
    assert.deepEqual([entries[2]!.ATTEMPT, entries[2]!.OK], ['2', 'false']);
    assert.equal(entries[3]!.EXIT_CODE, '1');
    assert.ok(!reader.datagrams.some((d) => d.includes('hunter2')));
  });

  it("'auto' with a journal socket but no systemd environment still logs to stdout", async () => {
    const before = reader.datagrams.length;
    const r = await runWithFakeJournal(
      reader,
      LINES,
      ['auto'],
      envWithout('INVOCATION_ID', 'JOURNAL_STREAM'),
    );
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').length, 4);
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(reader.datagrams.length, before);
  });
});

describe('journalFieldName', () => {
  it('upper-cases, splits camelCase and keeps systemd fields out of reach', () => {
    assert.equal(journalFieldName('component'), 'COMPONENT');
    assert.equal(journalFieldName('clusterId'), 'CLUSTER_ID');
    assert.equal(journalFieldName('node.name-x'), 'NODE_NAME_X');
    assert.equal(journalFieldName('message'), 'SEXTANT_MESSAGE');
    assert.equal(journalFieldName('priority'), 'SEXTANT_PRIORITY');
    assert.equal(journalFieldName('_pid'), 'PID');
    assert.equal(journalFieldName('2fa'), 'SEXTANT_2FA');
    assert.equal(journalFieldName('ü'), 'SEXTANT_FIELD');
    assert.equal(journalFieldName('x'.repeat(80)).length, 64);
  });
});
