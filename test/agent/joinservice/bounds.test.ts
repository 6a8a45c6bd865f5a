// The JoinService's bounds, its admission registry, its signed audit log and its measurements reload.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type Admission, AdmissionRegistry } from '../../../agent/joinservice/admissions.js';
import { AuditLog, isAdmission, readAuditLog } from '../../../agent/joinservice/audit-log.js';
import { PeerRateLimiter, peerHost, Semaphore } from '../../../agent/joinservice/limits.js';
import { MeasurementsSource } from '../../../agent/joinservice/measurements-source.js';
import { formatMeasurementsFile, measurementsMac } from '../../../attestation/measurements.js';
import { recordingLog } from '../../harness/recording-log.js';
import { tempDir } from '../../harness/temp-dir.js';
import { auditEntry } from '../fakes.js';
import { publishMeasurements, serialDoc, serialVerifier } from './serial-measurements.js';

const dir = tempDir('sextant-joinservice-');

describe('Semaphore', () => {
  it('admits up to its capacity, queues up to maxQueue, refuses beyond, and hands slots over on release', async () => {
    const s = new Semaphore(2, 1);
    const a = await s.acquire();
    const b = await s.acquire();
    let third = false;
    const queued = s.acquire().then((release) => {
      third = true;
      return release;
    });
    await assert.rejects(s.acquire(), /too many verifications in flight/);
    assert.equal(third, false);
    a();
    const c = await queued;
    assert.equal(third, true);
    b();
    c();
    const d = await s.acquire();
    d();
  });
});

describe('PeerRateLimiter', () => {
  it('allows a burst per peer, refills at the rate, and keeps peers apart', () => {
    let now = 0;
    const limiter = new PeerRateLimiter(3, 2, () => now);
    assert.deepEqual(
      [1, 2, 3, 4].map(() => limiter.allow('10.0.0.1')),
      [true, true, true, false],
    );
    assert.equal(limiter.allow('10.0.0.2'), true, 'another peer has its own bucket');
    now += 500; // half a second at 2/s: one token back
    assert.equal(limiter.allow('10.0.0.1'), true);
    assert.equal(limiter.allow('10.0.0.1'), false);
    now += 60_000;
    assert.deepEqual(
      [1, 2, 3, 4].map(() => limiter.allow('10.0.0.1')),
      [true, true, true, false],
      'never above burst',
    );
  });

  it('keys by host: every connection of one node shares its bucket', () => {
    assert.equal(peerHost('ipv4:10.1.2.3:41000'), '10.1.2.3');
    assert.equal(peerHost('10.1.2.3:41001'), '10.1.2.3');
    assert.equal(peerHost('ipv6:[::1]:5000'), '::1');
    assert.equal(peerHost('unix:/x'), 'unix:/x');
  });
});

describe('AdmissionRegistry', () => {
  it('persists admissions by EK 0600, with the names and disks they hold, and reads them back after a restart', async () => {
    const d = join(dir, 'reg');
    await mkdir(d, { recursive: true });
    const reg = await AdmissionRegistry.open(d);
    const admission: Admission = {
      ek: 'e1'.repeat(32),
      nodeName: 'w-0',
      diskUuid: '3b0b8c2e-2c2a-4a0e-9f7e-0d7b1b6f0a11',
      role: 'worker',
      state: 'pending',
      akName: '000b01',
      ekCertificateHash: 'ab'.repeat(32),
      admittedAt: new Date(0).toISOString(),
    };
    await reg.record(admission);
    assert.equal((await stat(reg.path)).mode & 0o777, 0o600);
    assert.equal(await reg.confirm(admission.ek, new Date(1000)), true);
    assert.equal(await reg.confirm('e2'.repeat(32)), false, 'nothing to confirm for an unknown EK');
    const again = await AdmissionRegistry.open(d);
    assert.deepEqual(again.get(admission.ek), {
      ...admission,
      state: 'confirmed',
      confirmedAt: new Date(1000).toISOString(),
    });
    assert.equal(again.holderOfName('w-0')?.ek, admission.ek);
    assert.equal(again.holderOfDisk(admission.diskUuid)?.ek, admission.ek);
    assert.equal(again.get('e2'.repeat(32)), undefined, 'an unknown EK has no disk to rejoin with');
  });

  it('an admission whose write fails does not count', async () => {
    const d = join(dir, 'reg-fail');
    await mkdir(d, { recursive: true });
    const reg = await AdmissionRegistry.open(d);
    await rm(d, { recursive: true });
    await writeFile(d, 'not a directory'); // the rename into d/admissions.json fails
    await assert.rejects(
      reg.record({
        ek: 'e3'.repeat(32),
        nodeName: 'w-1',
        diskUuid: '9c1d2e3f-4a5b-4c6d-8e7f-0a1b2c3d4e5f',
        role: 'worker',
        state: 'pending',
        akName: '',
        ekCertificateHash: '',
        admittedAt: new Date(0).toISOString(),
      }),
    );
    assert.equal(reg.get('e3'.repeat(32)), undefined);
    assert.equal(reg.holderOfName('w-1'), undefined);
  });

  it('refuses a registry of the old format keyed by AK, rather than guess which EK holds which disk', async () => {
    const d = join(dir, 'old-reg');
    await mkdir(d, { recursive: true });
    await writeFile(join(d, 'admissions.json'), JSON.stringify({ '000b01': { nodeName: 'w-0' } }));
    await assert.rejects(AdmissionRegistry.open(d), /not an admission registry of format 2 \(keyed by EK\)/);
  });

  it('refuses a corrupt registry, naming the file', async () => {
    const d = join(dir, 'bad-reg');
    await mkdir(d, { recursive: true });
    await writeFile(join(d, 'admissions.json'), '{not json');
    await assert.rejects(AdmissionRegistry.open(d), /admissions\.json/);
  });
});

describe('AuditLog', () => {
  it('appends signed, chained records (concurrent appends stay linear) that an operator reads back', async () => {
    const d = join(dir, 'audit');
    const log = await AuditLog.open(d);
    await Promise.all(
      ['a', 'b', 'c', 'd'].map((n, i) => log.append(auditEntry(n, i % 2 ? 'refused' : 'admitted'))),
    );
    const records = await readAuditLog(log.path, log.publicKeyPem);
    assert.deepEqual(
      records.map((r) => r.record.seq),
      [1, 2, 3, 4],
    );
    assert.deepEqual(
      records.map((r) => (isAdmission(r.record) ? r.record.nodeName : r.record.kind)),
      ['a', 'b', 'c', 'd'],
    );
    assert.equal((await stat(log.path)).mode & 0o777, 0o600);
    assert.equal((await stat(join(d, 'audit-key.pem'))).mode & 0o777, 0o600);
    // A restarted JoinService continues the same chain with the same key.
    const reopened = await AuditLog.open(d);
    assert.equal(reopened.publicKeyPem, log.publicKeyPem);
    await reopened.append(auditEntry('e', 'admitted'));
    assert.equal((await readAuditLog(log.path, log.publicKeyPem)).at(-1)?.record.seq, 5);
  });

  it('detects an edited, removed or reordered record and a signature by another key', async () => {
    const d = join(dir, 'audit-tamper');
    const log = await AuditLog.open(d);
    for (const n of ['a', 'b', 'c']) await log.append(auditEntry(n, 'admitted'));
    const original = await readFile(log.path, 'utf8');
    const lines = original.trimEnd().split('\n');

    await writeFile(log.path, original.replace('"verdict":"admitted"', '"verdict":"refused"'));
    await assert.rejects(readAuditLog(log.path, log.publicKeyPem), /line 1: bad signature/);
    await writeFile(log.path, `${[lines[0], lines[2]].join('\n')}\n`);
    await assert.rejects(readAuditLog(log.path, log.publicKeyPem), /line 2: chain broken/);
    await writeFile(log.path, `${[lines[1], lines[0], lines[2]].join('\n')}\n`);
    await assert.rejects(readAuditLog(log.path, log.publicKeyPem), /line 1: chain broken/);
    await writeFile(log.path, `${lines[0]}\nnot json\n`);
    await assert.rejects(readAuditLog(log.path, log.publicKeyPem), /line 2: not JSON/);

    await writeFile(log.path, original);
    const other = await AuditLog.open(join(dir, 'audit-other'));
    await assert.rejects(readAuditLog(log.path, other.publicKeyPem), /line 1: bad signature/);
    assert.equal((await readAuditLog(log.path, log.publicKeyPem)).length, 3);
  });
});

describe('MeasurementsSource', () => {
  const macKey = randomBytes(32);
  const publish = (file: string, text: string, key: Buffer = macKey) => publishMeasurements(file, text, key);

  it('reloads changed measurements; a join in flight keeps the verifier it started with', async () => {
    const file = join(dir, 'measurements.json');
    await writeFile(file, serialDoc(1));
    const log = recordingLog();
    const source = new MeasurementsSource(file, serialDoc(1), serialVerifier, log, macKey);
    const inFlight = source.current();
    assert.equal(await source.reload(), false, 'unchanged file: nothing to do');
    await publish(file, serialDoc(2));
    assert.equal(await source.reload(), true);
    assert.notEqual(source.current(), inFlight);
    assert.deepEqual(await inFlight.challenge({} as never), { serial: 1 });
    assert.deepEqual(await source.current().challenge({} as never), { serial: 2 });
    assert.ok(log.lines.some((l) => l.startsWith('info measurements reloaded')));
  });

  it('keeps the current measurements when the new file is bad or gone', async () => {
    const file = join(dir, 'measurements-bad.json');
    await writeFile(file, serialDoc(1));
    const log = recordingLog();
    const source = new MeasurementsSource(file, serialDoc(1), serialVerifier, log, macKey);
    const current = source.current();
    await publish(file, '{"nope":true}');
    assert.equal(await source.reload(), false);
    assert.equal(source.current(), current);
    assert.ok(
      log.lines.some((l) => /reload refused, keeping the current ones: .*"measurements" field/.test(l)),
    );
    await rm(file);
    assert.equal(await source.reload(), false);
    assert.ok(log.lines.some((l) => /cannot read/.test(l)));
  });

  const forged: Array<{ name: string; write: (file: string) => Promise<void>; error: RegExp }> = [
    {
      name: 'hand-edited on disk (no new MAC)',
      write: (file) => writeFile(file, serialDoc(9)),
      error: /its MAC does not verify/,
    },
    {
      name: 'with a MAC under another key',
      write: (file) => publish(file, serialDoc(9), randomBytes(32)),
      error: /its MAC does not verify/,
    },
    {
      name: 'with no MAC at all',
      write: async (file) => {
        await rm(`${file}.mac`, { force: true });
        await writeFile(file, serialDoc(9));
      },
      error: /no MAC beside it/,
    },
  ];
  for (const f of forged) {
    it(`refuses a replaced file ${f.name}: the current measurements stay`, async () => {
      const file = join(dir, `measurements-forged-${forged.indexOf(f)}.json`);
      await publish(file, serialDoc(1));
      const log = recordingLog();
      const source = new MeasurementsSource(file, serialDoc(1), serialVerifier, log, macKey);
      const current = source.current();
      await f.write(file);
      assert.equal(await source.reload(), false);
      assert.equal(source.current(), current);
      assert.ok(
        log.lines.some((l) => /reload refused, keeping the current ones/.test(l) && f.error.test(l)),
        log.lines.join('\n'),
      );
    });
  }

  // the MAC covers the document's serial, and the JoinService never goes below the one it runs
  const rollbacks: Array<{ name: string; running: number; replaced: () => string; error: RegExp }> = [
    {
      name: 'an earlier (file, MAC) pair put back after a later one',
      running: 2,
      replaced: () => serialDoc(1),
      error: /serial 1 is not above the serial 2 in use/,
    },
    {
      name: 'other measurements under the serial in use',
      running: 2,
      replaced: () => serialDoc(2).replace('img-2', 'img-2b'),
      error: /serial 2 is not above the serial 2 in use/,
    },
    {
      name: 'a document without a serial after a serial one',
      running: 2,
      replaced: () => formatMeasurementsFile({ 4: { expected: '05'.repeat(32), warnOnly: false } }),
      error: /serial 0 is not above the serial 2 in use/,
    },
  ];
  for (const r of rollbacks) {
    it(`refuses ${r.name}, with a valid MAC: the current measurements stay`, async () => {
      const file = join(dir, `measurements-rollback-${rollbacks.indexOf(r)}.json`);
      await publish(file, serialDoc(1));
      const log = recordingLog();
      const source = new MeasurementsSource(file, serialDoc(1), serialVerifier, log, macKey);
      await publish(file, serialDoc(r.running));
      assert.equal(await source.reload(), true, 'the later document is taken');
      assert.equal(source.serial, r.running);
      const current = source.current();
      await publish(file, r.replaced());
      assert.equal(await source.reload(), false);
      assert.equal(source.current(), current);
      assert.equal(source.serial, r.running);
      assert.deepEqual(await source.current().challenge({} as never), { serial: r.running });
      assert.ok(
        log.lines.some((l) => /reload refused, keeping the current ones/.test(l) && r.error.test(l)),
        log.lines.join('\n'),
      );
    });
  }

  it('picks up an atomic replace of the file by itself', async () => {
    const sub = join(dir, 'watched');
    await mkdir(sub);
    const file = join(sub, 'measurements.json');
    await writeFile(file, serialDoc(1));
    const log = recordingLog();
    const source = new MeasurementsSource(file, serialDoc(1), serialVerifier, log, macKey);
    source.watch();
    try {
      await writeFile(`${file}.mac`, measurementsMac(macKey, Buffer.from(serialDoc(3))));
      await writeFile(`${file}.tmp`, serialDoc(3));
      await rename(`${file}.tmp`, file);
      for (let i = 0; i < 50 && !log.lines.some((l) => l.includes('measurements reloaded')); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual(await source.current().challenge({} as never), { serial: 3 });
    } finally {
      source.close();
    }
  });
});
