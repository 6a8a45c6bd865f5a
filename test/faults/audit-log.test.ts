// @tier system: root (a tmpfs mounted)
// One moment of full disk must not make a control plane unable to start again. The JoinService's
// audit log cuts a torn tail, sets a broken segment aside and starts a new signed one, rotates at a size bound,
// counts pre-challenge refusals instead of logging each, and an append that did not reach the disk rejects
// (the admission it records then fails). In-process on a temp dir, and on a real tmpfs filled to the last page.
import assert from 'node:assert/strict';
import { appendFile, open, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  AuditAppendError,
  AuditLog,
  isAdmission,
  readAuditLog,
  readAuditTrail,
} from '../../agent/joinservice/audit-log.js';
import { auditEntry } from '../agent/fakes.js';
import { tempDir } from '../harness/temp-dir.js';
import { mountSmallDisk, type SmallDisk } from './tools/tmpfs.js';

function notices() {
  const seen: string[] = [];
  return { seen, notice: (_level: 'info' | 'warn', message: string) => seen.push(message) };
}

const names = (records: { record: Parameters<typeof isAdmission>[0] }[]) =>
  records.map((r) => (isAdmission(r.record) ? r.record.nodeName : `<${r.record.kind}>`));

describe('audit log faults: torn tails, full disks and broken segments', () => {
  const root = tempDir('sextant-audit-faults-');

  it('a torn tail (an append cut off mid-record) is removed on open, said in a signed record, and the chain goes on', async () => {
    const dir = join(root, 'torn');
    const log = await AuditLog.open(dir);
    for (const n of ['a', 'b', 'c']) await log.append(auditEntry(n));
    const whole = (await stat(log.path)).size;
    const line = (await readFile(log.path, 'utf8')).split('\n')[0]!;
    await appendFile(log.path, line.slice(0, 97));

    const n = notices();
    const reopened = await AuditLog.open(dir, { notice: n.notice });
    assert.ok(
      n.seen.some((m) => /removed a torn tail of 97 bytes/.test(m)),
      n.seen.join('\n'),
    );
    await reopened.append(auditEntry('d'));
    const records = await readAuditLog(log.path, log.publicKeyPem);
    assert.deepEqual(names(records), ['a', 'b', 'c', '<repair>', 'd']);
    assert.ok((await stat(log.path)).size > whole);
  });

  const breakages: { name: string; damage: (path: string, text: string) => Promise<void>; why: RegExp }[] = [
    {
      name: 'an edited record',
      damage: (p, t) => writeFile(p, t.replace('"nodeName":"b"', '"nodeName":"x"')),
      why: /did not verify .*line 2: bad signature/,
    },
    {
      name: 'a removed record',
      damage: (p, t) =>
        writeFile(
          p,
          t
            .split('\n')
            .filter((_, i) => i !== 1)
            .join('\n'),
        ),
      why: /did not verify .*line 2: chain broken/,
    },
    {
      name: 'garbage in the middle (what the old append left after a full disk)',
      damage: (p, t) => writeFile(p, t.replace('\n', '{"record":{"seq\n')),
      why: /did not verify .*line 1: not JSON/,
    },
  ];
  for (const b of breakages) {
    it(`a log with ${b.name} does not stop the JoinService: set aside, a new signed segment says why`, async () => {
      const dir = join(root, `broken-${breakages.indexOf(b)}`);
      const log = await AuditLog.open(dir);
      for (const n of ['a', 'b', 'c']) await log.append(auditEntry(n));
      await b.damage(log.path, await readFile(log.path, 'utf8'));

      const n = notices();
      const reopened = await AuditLog.open(dir, { notice: n.notice });
      assert.ok(
        n.seen.some((m) => b.why.test(m)),
        n.seen.join('\n'),
      );
      assert.ok(n.seen.some((m) => /new signed segment/.test(m)));
      await reopened.append(auditEntry('d'));
      const trail = await readAuditTrail(dir, reopened.publicKeyPem);
      assert.equal(trail.length, 2);
      assert.equal(trail[0]?.file, 'admissions.log.1');
      assert.match(trail[0]?.error ?? '', /line \d: (bad signature|chain broken|not JSON)/);
      assert.equal(trail[1]?.error, undefined);
      assert.deepEqual(names(trail[1]!.records), ['<segment>', 'd']);
      const opening = trail[1]!.records[0]!.record;
      assert.ok(
        'kind' in opening &&
          opening.kind === 'segment' &&
          /new chain: admissions\.log did not verify/.test(opening.reason),
      );
    });
  }

  it('an unreadable audit key: a new key signs a new segment, the old public key is kept beside the old records', async () => {
    const dir = join(root, 'badkey');
    const log = await AuditLog.open(dir);
    await log.append(auditEntry('a'));
    await writeFile(join(dir, 'audit-key.pem'), 'not a key');
    const n = notices();
    const reopened = await AuditLog.open(dir, { notice: n.notice });
    assert.notEqual(reopened.publicKeyPem, log.publicKeyPem);
    await reopened.append(auditEntry('b'));
    const files = await readdir(dir);
    const oldPub = files.find((f) => f.startsWith('audit-key.pub.pem.'));
    assert.ok(oldPub, files.join(' '));
    assert.equal(await readFile(join(dir, oldPub), 'utf8'), log.publicKeyPem);
    assert.deepEqual(names(await readAuditLog(join(dir, 'admissions.log.1'), log.publicKeyPem)), ['a']);
    assert.deepEqual(names(await readAuditLog(reopened.path, reopened.publicKeyPem)), ['<segment>', 'b']);
    assert.ok(n.seen.some((m) => /audit key was unreadable/.test(m)));
  });

  it('rotates at its size bound: never more than maxSegments + 1 files, each under the bound, the chain continues', async () => {
    const dir = join(root, 'rotate');
    const n = notices();
    const log = await AuditLog.open(dir, { maxSegmentBytes: 4096, maxSegments: 2, notice: n.notice });
    for (let i = 0; i < 60; i++) await log.append(auditEntry(`n${i}`));
    const files = (await readdir(dir)).filter((f) => f.startsWith('admissions.log'));
    assert.deepEqual(files.sort(), ['admissions.log', 'admissions.log.1', 'admissions.log.2']);
    for (const f of files) assert.ok((await stat(join(dir, f))).size <= 4096, f);
    const trail = await readAuditTrail(dir, log.publicKeyPem);
    assert.ok(trail.every((s) => s.error === undefined));
    const all = trail.flatMap((s) => names(s.records)).filter((x) => x !== '<segment>');
    // The newest records are all there, in order, ending with the last one appended.
    assert.equal(all.at(-1), 'n59');
    const idx = all.map((x) => Number(x.slice(1)));
    assert.deepEqual(
      idx,
      [...idx].sort((a, b) => a - b),
    );
    assert.ok(n.seen.some((m) => /rotated/.test(m)));
  });

  it('refusals before any challenge are counted into one summary record, not one line each', async () => {
    const dir = join(root, 'counted');
    const log = await AuditLog.open(dir, { summaryIntervalMs: 3_600_000 });
    for (let i = 0; i < 5000; i++)
      log.countRefusal(i % 2 ? 'attestation: required' : 'no outstanding challenge');
    for (let i = 0; i < 100; i++) log.countRefusal(`reason ${i}`);
    await log.close();
    const records = await readAuditLog(log.path, log.publicKeyPem);
    assert.equal(records.length, 1);
    const summary = records[0]!.record;
    assert.ok('kind' in summary && summary.kind === 'refusals');
    assert.equal(summary.counts['attestation: required'], 2500);
    assert.equal(summary.counts['no outstanding challenge'], 2500);
    assert.equal(
      Object.values(summary.counts).reduce((a, b) => a + b, 0),
      5100,
    );
    assert.ok(Object.keys(summary.counts).length <= 33);
    assert.ok((await stat(log.path)).size < 4096);
  });

  describe('on a tmpfs filled to the last page', () => {
    let disk: SmallDisk;
    before(async () => {
      disk = await mountSmallDisk(128);
    });
    after(() => disk.unmount());

    it('a full disk fails the append (no torn record left), and the log goes on once there is room', async () => {
      const dir = join(disk.dir, 'joinservice');
      const log = await AuditLog.open(dir);
      await log.append(auditEntry('before'));
      await disk.fill();
      const appended: string[] = [];
      let failure: unknown;
      for (let i = 0; i < 100 && failure === undefined; i++) {
        const size = (await stat(log.path)).size;
        try {
          await log.append(auditEntry(`full-${i}`));
          appended.push(`full-${i}`);
        } catch (err) {
          failure = err;
          // Nothing of the failed record stays behind.
          assert.equal((await stat(log.path)).size, size);
        }
      }
      assert.ok(failure instanceof AuditAppendError, String(failure));
      assert.match(String((failure as Error).message), /ENOSPC/);
      // The slack of the last page took some records; the one that crossed into a new page failed.
      assert.deepEqual(names(await readAuditLog(log.path, log.publicKeyPem)), ['before', ...appended]);

      // Restart on the still-full disk: opens, verifies, no repair needed.
      const n = notices();
      const reopened = await AuditLog.open(dir, { notice: n.notice });
      assert.deepEqual(n.seen, []);
      await assert.rejects(reopened.append(auditEntry('still-full')), AuditAppendError);

      await disk.free();
      await reopened.append(auditEntry('after'));
      assert.deepEqual(names(await readAuditLog(log.path, log.publicKeyPem)), [
        'before',
        ...appended,
        'after',
      ]);
    });

    it('a torn tail on a full disk: the JoinService still starts, the repair note waits for room', async () => {
      await disk.free();
      const dir = join(disk.dir, 'torn-full');
      const log = await AuditLog.open(dir);
      await log.append(auditEntry('a'));
      await disk.fill();
      // Use up the slack of the log's last page, as a busy JoinService would.
      for (let i = 0; i < 100; i++) {
        if (
          !(await log.append(auditEntry(`slack-${i}`)).then(
            () => true,
            () => false,
          ))
        )
          break;
      }
      // What a crash or an older agent leaves: the kernel's short write, up to the end of the last page.
      const handle = await open(log.path, 'a');
      const { bytesWritten } = await handle.write(Buffer.alloc(8192, 0x7b));
      await handle.close();
      assert.ok(bytesWritten > 0 && bytesWritten < 8192, `short write of ${bytesWritten}`);
      const n = notices();
      const reopened = await AuditLog.open(dir, { notice: n.notice });
      assert.ok(
        n.seen.some((m) => new RegExp(`torn tail of ${bytesWritten} bytes`).test(m)),
        n.seen.join('\n'),
      );
      await assert.rejects(reopened.append(auditEntry('b')), AuditAppendError);
      await disk.free();
      await reopened.append(auditEntry('c'));
      const kept = names(await readAuditLog(log.path, log.publicKeyPem));
      assert.deepEqual(kept.slice(0, 2), ['a', 'slack-0']);
      assert.deepEqual(kept.slice(-2), ['<repair>', 'c']);
    });

    it('a log started on a full disk (no key on disk yet) fails appends until there is room, then keeps one key', async () => {
      await disk.free();
      await disk.fill();
      const dir = join(disk.dir, 'fresh-full');
      const log = await AuditLog.open(dir);
      await assert.rejects(log.append(auditEntry('a')), AuditAppendError);
      await disk.free();
      await log.append(auditEntry('b'));
      const reopened = await AuditLog.open(dir);
      assert.equal(reopened.publicKeyPem, log.publicKeyPem);
      assert.deepEqual(names(await readAuditLog(log.path, log.publicKeyPem)), ['b']);
    });
  });
});
