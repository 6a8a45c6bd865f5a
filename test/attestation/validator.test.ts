// @tier system: swtpm
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  AttestationDocument,
  AttestationError,
  createChallenge,
  createIssuer,
  createTrust,
  describeEvent,
  type ExpectedChallenge,
  eventDataVerified,
  eventsForPcr,
  type Measurements,
  makeCredential,
  type PcrMismatch,
  parseEventLog,
  parseTpmtPublic,
  pcr15ForClusterId,
  type Trust,
  validateDocument,
} from '../../attestation/index.js';
import type { Tpm } from '../../native/tpm/index.js';
import { createSwtpmCa, removeSwtpmCa, type SwtpmCa } from '../harness/swtpm.js';
import { type Attester, cloneDoc, failsAt, fixturePcrs, flip, startAttester, VARIANT } from './helpers.js';

describe('attestation validator against swtpm', () => {
  let node: Attester;
  let trust: Trust;
  let measurements: Measurements;
  const clusterId = randomBytes(32);
  const userData = randomBytes(32);
  // one good document, and the challenge it answers; negative tests mutate copies
  let doc: AttestationDocument;
  let expected: ExpectedChallenge;

  before(async () => {
    node = await startAttester({ bootLog: true });
    await node.tpm.extendPcr(15, clusterId);
    trust = createTrust({ ekCaCertificates: [node.swtpm.ca.rootPem, node.swtpm.ca.issuerPem] });
    measurements = {};
    for (const pcr of [0, 1, 2, 3, 4, 5, 6, 7, 9]) {
      measurements[pcr] = { expected: fixturePcrs()[String(pcr)]!, warnOnly: false };
    }
    measurements[15] = { expected: pcr15ForClusterId(clusterId), warnOnly: false };
    const c = createChallenge(node.issuer.identity(), trust);
    expected = c.expected;
    doc = await node.issuer.attest(c.challenge, userData);
  });
  after(async () => {
    await node?.stop();
  });

  const validate = (d: AttestationDocument, over: Partial<Parameters<typeof validateDocument>[1]> = {}) =>
    validateDocument(d, { expected, userData, measurements, trust, variant: VARIANT, ...over });

  test('happy path: a document survives the protobuf encoding and validates without warnings', () => {
    const wire = AttestationDocument.encode(doc).finish();
    const decoded = AttestationDocument.decode(wire);
    const result = validate(decoded);
    assert.deepEqual(result.warnings, []);
    assert.equal(result.pcrs.size, 24);
    assert.equal(result.pcrs.get(4)!.toString('hex'), fixturePcrs()['4']);
    assert.equal(result.pcrs.get(15)!.toString('hex'), pcr15ForClusterId(clusterId));
    assert.ok(result.akName.equals(parseTpmtPublic(doc.akPublic).name));
    assert.ok(doc.eventLog.length > 0, 'the boot log is attached');
  });

  test('a fresh challenge per attestation: two documents, each validates only against its own', async () => {
    const c2 = createChallenge(node.issuer.identity(), trust);
    const doc2 = await node.issuer.attest(c2.challenge, userData);
    assert.doesNotThrow(() => validate(doc2, { expected: c2.expected }));
    // the old document replayed against the new challenge: its credential secret is stale
    assert.throws(() => validate(doc, { expected: c2.expected }), failsAt('ak-trust', /credential_secret/));
  });

  test('wrong variant', () => {
    assert.throws(() => validate(doc, { variant: 'gcp-sev-snp' }), failsAt('variant', /qemu-vtpm/));
    const d = cloneDoc(doc);
    d.variant = 'aws-nitro-tpm';
    assert.throws(() => validate(d), failsAt('variant'));
  });

  test('checks run in order: a wrong variant is reported before a broken quote', () => {
    const d = cloneDoc(doc);
    d.variant = 'other';
    d.quote = flip(d.quote, 10);
    assert.throws(() => validate(d), failsAt('variant'));
  });

  test('wrong nonce', () => {
    assert.throws(
      () => validate(doc, { expected: { ...expected, nonce: randomBytes(32) } }),
      failsAt('extra-data', /nonce/),
    );
  });

  test('wrong user data (a document relayed from another TLS key)', () => {
    assert.throws(() => validate(doc, { userData: randomBytes(32) }), failsAt('extra-data'));
  });

  test('a flipped byte in the quote', () => {
    const d = cloneDoc(doc);
    d.quote = flip(d.quote, d.quote.length - 5);
    assert.throws(() => validate(d), failsAt('signature'));
  });

  test('a flipped byte in the signature', () => {
    const d = cloneDoc(doc);
    d.signature = flip(d.signature, 12);
    assert.throws(() => validate(d), failsAt('signature'));
  });

  test('a flipped byte in one PCR value', () => {
    const d = cloneDoc(doc);
    d.pcrs[7] = flip(d.pcrs[7]!, 0);
    assert.throws(() => validate(d), failsAt('pcr-digest'));
  });

  test('a flipped byte in the event log', () => {
    const d = cloneDoc(doc);
    // a byte inside the SHA-256 digest of event 10 (the kernel image, PCR 4): the log no longer replays
    d.eventLog = flip(d.eventLog, 2008 + 12 + 22 + 2 + 5);
    assert.throws(() => validate(d), failsAt('event-log', /PCR 4/));
    const truncated = cloneDoc(doc);
    truncated.eventLog = truncated.eventLog.subarray(0, truncated.eventLog.length - 7);
    assert.throws(() => validate(truncated), failsAt('event-log', /byte offset \d+/));
  });

  test('AK not bound to the EK: a wrong credential secret', () => {
    const d = cloneDoc(doc);
    d.credentialSecret = randomBytes(32);
    assert.throws(() => validate(d), failsAt('ak-trust', /not bound/));
    const empty = cloneDoc(doc);
    empty.credentialSecret = Buffer.alloc(0);
    assert.throws(() => validate(empty), failsAt('ak-trust'));
  });

  test('AK not bound to the EK: a credential wrapped for another AK is refused by the TPM', async () => {
    const { challenge } = createChallenge(node.issuer.identity(), trust);
    const ek = parseTpmtPublic(node.issuer.identity().ekPublic);
    const otherName = Buffer.concat([Buffer.from([0x00, 0x0b]), randomBytes(32)]);
    const wrapped = makeCredential(ek, otherName, randomBytes(32));
    await assert.rejects(() => node.issuer.attest({ ...challenge, ...wrapped }, userData));
  });

  test('the document must come from the challenged identity', () => {
    const d = cloneDoc(doc);
    d.akPublic = flip(d.akPublic, d.akPublic.length - 1);
    assert.throws(() => validate(d), failsAt('ak-trust', /ak_public/));
    const e = cloneDoc(doc);
    e.ekCertificate = flip(e.ekCertificate, e.ekCertificate.length - 3);
    assert.throws(() => validate(e), failsAt('ak-trust', /ek_certificate/));
  });

  test('a warnOnly mismatch passes with a warning naming the PCR', () => {
    const m: Measurements = { ...measurements, 4: { expected: 'ab'.repeat(32), warnOnly: true } };
    const result = validate(doc, { measurements: m });
    assert.equal(result.warnings.length, 1);
    assert.match(result.warnings[0]!, /PCR 4: expected (ab){32}, actual [0-9a-f]{64}/);
  });

  test('an enforced mismatch names the PCR, both values and the boot log events behind it', () => {
    const m: Measurements = { ...measurements, 4: { expected: 'ab'.repeat(32), warnOnly: false } };
    assert.throws(
      () => validate(doc, { measurements: m }),
      (err: unknown) => {
        assert.ok(err instanceof AttestationError);
        assert.equal(err.check, 'measurements');
        assert.match(err.message, /PCR 4: expected (ab){32}, actual a0a7012a58bd20ce/);
        assert.match(err.message, /#10 EV_EFI_BOOT_SERVICES_APPLICATION sha256:db81620377c4cd07/);
        assert.match(err.message, /kernel/);
        const mismatches = (err.details?.mismatches ?? []) as Array<{ pcr: number; events: unknown[] }>;
        assert.equal(mismatches[0]?.pcr, 4);
        assert.equal(mismatches[0]?.events.length, 3);
        return true;
      },
    );
  });

  test('event data no digest covers: a flipped byte still replays, and explanations mark it unverified', () => {
    const log = parseEventLog(doc.eventLog);
    // event 10 loads the kernel: its digest is the PE image's hash, its data (the device path) is not covered
    const ev = log.events[10]!;
    assert.equal(eventDataVerified(ev), false);
    const covered = eventsForPcr(log, 4).find((e) => eventDataVerified(e));
    assert.ok(covered, 'PCR 4 also has events whose data its digest covers (EV_EFI_ACTION, separator)');
    const d = cloneDoc(doc);
    const at = ev.data.byteOffset - doc.eventLog.byteOffset + ev.data.length - 8;
    d.eventLog = flip(d.eventLog, at);
    const tampered = parseEventLog(d.eventLog).events[10]!;
    assert.notEqual(describeEvent(tampered), describeEvent(ev), 'the flip changed what the data says');
    const m: Measurements = { ...measurements, 4: { expected: 'ab'.repeat(32), warnOnly: false } };
    assert.throws(
      () => validate(d, { measurements: m }),
      (err: unknown) => {
        assert.ok(err instanceof AttestationError && err.check === 'measurements', String(err));
        assert.ok(err.message.includes(`(unverified event data: ${describeEvent(tampered)})`), err.message);
        assert.ok(err.message.includes(`(${describeEvent(covered)})`), 'covered data is quoted unmarked');
        const events = (err.details?.mismatches as PcrMismatch[] | undefined)?.[0]?.events ?? [];
        assert.deepEqual(
          events.map((e) => e.dataVerified),
          eventsForPcr(log, 4).map((e) => eventDataVerified(e)),
        );
        return true;
      },
    );
  });

  test('an enforced mismatch on a PCR the boot log does not cover says so', () => {
    const m: Measurements = {
      ...measurements,
      15: { expected: pcr15ForClusterId(randomBytes(32)), warnOnly: false },
    };
    assert.throws(
      () => validate(doc, { measurements: m }),
      failsAt('measurements', /no boot log event extends PCR 15/),
    );
  });

  test('error messages never carry the credential secret', () => {
    const d = cloneDoc(doc);
    d.credentialSecret = flip(d.credentialSecret, 0);
    try {
      validate(d);
      assert.fail('should throw');
    } catch (err) {
      const text = `${(err as Error).message} ${JSON.stringify((err as AttestationError).details ?? {})}`;
      assert.ok(!text.includes(expected.secret.toString('hex')));
      assert.ok(!text.includes(expected.secret.toString('base64')));
    }
  });

  describe('with a second TPM whose EK certificate comes from another CA', () => {
    let otherCa: SwtpmCa;
    let other: Attester;
    before(async () => {
      otherCa = await createSwtpmCa();
      other = await startAttester({ ca: otherCa });
    });
    after(async () => {
      await other?.stop();
      if (otherCa) removeSwtpmCa(otherCa);
    });

    test('its EK certificate is refused before any credential is wrapped', () => {
      assert.throws(
        () => createChallenge(other.issuer.identity(), trust),
        failsAt('ek-chain', /not signed by/),
      );
      const otherTrust = createTrust({ ekCaCertificates: [otherCa.rootPem, otherCa.issuerPem] });
      assert.doesNotThrow(() => createChallenge(other.issuer.identity(), otherTrust));
      assert.throws(() => createChallenge(node.issuer.identity(), otherTrust), failsAt('ek-chain'));
    });

    test('its AK presented with our certified EK cannot activate the credential', async () => {
      const mixed = { ...node.issuer.identity(), akPublic: other.issuer.identity().akPublic };
      const { challenge } = createChallenge(mixed, trust);
      const tpm = other.tpm;
      const ak = await tpm.createAk('ecc'); // deterministic: the same AK the other issuer holds
      const ek = await tpm.readEndorsementKey();
      await assert.rejects(() =>
        tpm.activateCredential(ak, ek, challenge.credentialBlob, challenge.encryptedSecret),
      );
      await tpm.flush(ak.handle);
    });

    test('an EK public that the certificate does not certify is refused', () => {
      const mixed = { ...node.issuer.identity(), ekPublic: other.issuer.identity().ekPublic };
      assert.throws(() => createChallenge(mixed, trust), failsAt('ek-chain', /different key/));
    });
  });

  test('a missing event log file gives a document without a log, which still validates', async () => {
    const issuer = await createIssuer({ tpm: node.tpm, variant: VARIANT, eventLogPath: '/nonexistent/log' });
    try {
      const c = createChallenge(issuer.identity(), trust);
      const d = await issuer.attest(c.challenge, userData);
      assert.equal(d.eventLog.length, 0);
      assert.deepEqual(validate(d, { expected: c.expected }).warnings, []);
      const m: Measurements = { 4: { expected: 'cd'.repeat(32), warnOnly: false } };
      assert.throws(
        () => validate(d, { expected: c.expected, measurements: m }),
        failsAt('measurements', /no event log/),
      );
    } finally {
      await issuer.close();
    }
  });

  test('a PCR extended between PCR_Read and Quote: the issuer retries and stays consistent', async () => {
    let raced = false;
    const racing: Tpm = Object.create(node.tpm) as Tpm;
    racing.readPcrs = async (indices) => {
      const values = await node.tpm.readPcrs(indices);
      if (!raced) {
        raced = true;
        await node.tpm.extendPcr(16, randomBytes(32));
      }
      return values;
    };
    const issuer = await createIssuer({ tpm: racing, variant: VARIANT, eventLogPath: '/nonexistent/log' });
    try {
      const c = createChallenge(issuer.identity(), trust);
      const d = await issuer.attest(c.challenge, userData);
      assert.ok(raced);
      assert.doesNotThrow(() => validate(d, { expected: c.expected }));
    } finally {
      await issuer.close();
    }
  });
});
