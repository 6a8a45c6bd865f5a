// @tier system: swtpm
// Cross-check with a verifier no one here wrote: tpm2-tools' tpm2_checkquote must accept the quotes our issuer
// produces (ECC and RSA AKs), and refuse them with the wrong nonce or a wrong PCR value.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import {
  type AttestationDocument,
  createChallenge,
  createIssuer,
  createTrust,
  type Issuer,
  type Trust,
  validateDocument,
} from '../../attestation/index.js';
import { tempDir } from '../harness/temp-dir.js';
import { type Attester, startAttester, VARIANT } from './helpers.js';

const execFileAsync = promisify(execFile);

/**
 * The PCR file tpm2_quote -o writes and tpm2_checkquote -f reads: the C structs TPML_PCR_SELECTION (132 bytes),
 * a u32 count, then that many TPML_DIGEST (532 bytes, 8 digests each), host (little) endian. (tpm2-tools 5.4
 * fails on plain concatenated values: "Something wrong, trying to print but nothing more".)
 */
function toolsPcrFile(doc: AttestationDocument): Buffer {
  const selection = Buffer.alloc(132);
  selection.writeUInt32LE(1, 0);
  selection.writeUInt16LE(0x000b, 4);
  selection.writeUInt8(3, 6);
  selection.fill(0xff, 7, 10);
  const lists = 3;
  const out = Buffer.alloc(132 + 4 + lists * 532);
  selection.copy(out);
  out.writeUInt32LE(lists, 132);
  for (let l = 0; l < lists; l++) {
    const base = 136 + l * 532;
    out.writeUInt32LE(8, base);
    for (let d = 0; d < 8; d++) {
      const at = base + 4 + d * 66;
      out.writeUInt16LE(32, at);
      doc.pcrs[l * 8 + d]!.copy(out, at + 2);
    }
  }
  return out;
}

describe('tpm2_checkquote accepts our quotes', { skip: !existsSync('/usr/bin/tpm2_checkquote') }, () => {
  let node: Attester;
  let rsaIssuer: Issuer;
  let trust: Trust;
  const dir = tempDir('sextant-checkquote-');

  before(async () => {
    node = await startAttester({ bootLog: true });
    rsaIssuer = await createIssuer({
      tpm: node.tpm,
      variant: VARIANT,
      akAlgorithm: 'rsa',
      eventLogPath: '/nonexistent',
    });
    trust = createTrust({ ekCaCertificates: [node.swtpm.ca.rootPem, node.swtpm.ca.issuerPem] });
  });
  after(async () => {
    await rsaIssuer?.close();
    await node?.stop();
  });

  async function checkquote(name: string, doc: AttestationDocument, qualification: Buffer): Promise<boolean> {
    const size = Buffer.alloc(2);
    size.writeUInt16BE(doc.akPublic.length);
    const f = (suffix: string) => join(dir, `${name}.${suffix}`);
    await writeFile(f('ak.tss'), Buffer.concat([size, doc.akPublic])); // TPM2B_PUBLIC, as tpm2-tools stores it
    await writeFile(f('msg'), doc.quote);
    await writeFile(f('sig'), doc.signature);
    await writeFile(f('pcrs'), toolsPcrFile(doc));
    const args = ['-u', f('ak.tss'), '-m', f('msg'), '-s', f('sig'), '-f', f('pcrs')];
    try {
      await execFileAsync('tpm2_checkquote', [...args, '-g', 'sha256', '-q', qualification.toString('hex')]);
      return true;
    } catch (err) {
      if (process.env.DEBUG_CHECKQUOTE) console.error((err as { stderr?: string }).stderr);
      return false;
    }
  }

  for (const kind of ['ecc', 'rsa'] as const) {
    test(`${kind.toUpperCase()} AK`, async () => {
      const issuer = kind === 'ecc' ? node.issuer : rsaIssuer;
      const userData = randomBytes(32);
      const { challenge, expected } = createChallenge(issuer.identity(), trust);
      const doc = await issuer.attest(challenge, userData);
      assert.doesNotThrow(() =>
        validateDocument(doc, { expected, userData, measurements: {}, trust, variant: VARIANT }),
      );
      const qualification = createHash('sha256').update(userData).update(challenge.nonce).digest();
      assert.equal(await checkquote(kind, doc, qualification), true, 'tpm2_checkquote accepts the quote');
      assert.equal(
        await checkquote(`${kind}-nonce`, doc, randomBytes(32)),
        false,
        'and refuses another nonce',
      );
      const altered = { ...doc, pcrs: { ...doc.pcrs, 9: randomBytes(32) } };
      assert.equal(
        await checkquote(`${kind}-pcr`, altered, qualification),
        false,
        'and refuses an altered PCR',
      );
    });
  }
});
