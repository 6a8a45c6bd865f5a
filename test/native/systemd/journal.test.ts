import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { JOURNAL_SOCKET, journalAvailable, sendJournal } from '../../../native/systemd/journal.js';
import {
  type DgramReader,
  fakeJournalSkip,
  parseJournalDatagram,
  runWithFakeJournal,
  startDgramReader,
} from './fake-socket.js';

const SEND = new URL('./fixtures/send-journal.ts', import.meta.url).pathname;

describe('sendJournal against a fake journald', { skip: fakeJournalSkip }, () => {
  let reader: DgramReader;
  before(async () => {
    reader = await startDgramReader();
  });
  after(async () => {
    await reader.stop();
  });

  it('sends one datagram per entry with KEY=value fields, binary-framing values with newlines', async () => {
    const entries = [
      { MESSAGE: 'node lock taken', PRIORITY: '6', SYSLOG_IDENTIFIER: 'sextant-test', CLUSTER_ID: 'abc' },
      { MESSAGE: 'two\nlines', PRIORITY: '3', SYSLOG_IDENTIFIER: 'sextant-test' },
    ];
    const r = await runWithFakeJournal(
      reader,
      SEND,
      entries.map((e) => JSON.stringify(e)),
    );
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { available: true, rcs: [0, 0] });
    const [first, second] = (await reader.waitFor(2)).map(parseJournalDatagram);
    assert.deepEqual(first, entries[0]);
    assert.deepEqual(second, entries[1]);
    // the newline forces libsystemd's length-prefixed form: KEY\n<u64 le length>value\n
    const raw = reader.datagrams[1]!;
    assert.ok(raw.includes(Buffer.concat([Buffer.from('MESSAGE\n'), Buffer.from([9, 0, 0, 0, 0, 0, 0, 0])])));
  });
});

describe('sendJournal on this host', () => {
  it('reports availability from the journal socket', () => {
    assert.equal(journalAvailable(), existsSync(JOURNAL_SOCKET));
  });

  it('refuses field names journald would reject, naming the field', () => {
    for (const bad of ['message', '_PID', '1X', 'A-B', '', 'X'.repeat(65)]) {
      assert.throws(() => sendJournal({ MESSAGE: 'x', [bad]: 'v' }), /journal field name/);
    }
    assert.throws(() => sendJournal({}), /no fields/);
  });

  it('is silent (rc 0) when no journald listens', {
    skip: existsSync(JOURNAL_SOCKET) && 'journald runs here',
  }, () => {
    assert.equal(sendJournal({ MESSAGE: 'nobody listens', PRIORITY: '7' }), 0);
  });
});
