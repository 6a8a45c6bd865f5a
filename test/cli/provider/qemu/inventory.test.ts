// @tier system: swtpm
// The inventory `create` hands the cluster: the provider manufactures each TPM and reads back the EK certificates
// swtpm_setup wrote, so the EK a node later attests with is the one its signed inventory entry names.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createIssuer } from '../../../../attestation/issuer.js';
import { parseTpmtPublic } from '../../../../attestation/tpm-structures.js';
import { ekHashesIn, manufactureTpm, readLocalCa } from '../../../../cli/provider/qemu/swtpm.js';
import {
  deriveOwnerSeed,
  ekKeyHash,
  ownerKeyId,
  ownerPublicKeyText,
  parseOwnerPublicKey,
  signInventory,
  verifyInventory,
} from '../../../../common/contracts/owner.js';
import { openTpm } from '../../../../native/tpm/index.js';
import { startSwtpm } from '../../../harness/swtpm.js';
import { tempDir } from '../../../harness/temp-dir.js';

describe('qemu provider: inventory of the TPMs it made', { timeout: 60_000 }, () => {
  const dir = tempDir('sextant-inventory-');

  it('lists the EK the node attests with first (RSA), then its other EK', async () => {
    const caDir = join(dir, 'ca');
    await manufactureTpm(join(dir, 'tpm'), caDir, 'node-a', join(dir, 'ek'));
    const eks = ekHashesIn(join(dir, 'ek'));
    assert.equal(eks.length, 2, 'swtpm_setup certifies an RSA and an ECC EK');
    const ca = await readLocalCa(caDir);
    process.env.TSS2_LOG ??= 'all+none';
    const swtpm = await startSwtpm({
      stateDir: join(dir, 'tpm'),
      ca: { dir: caDir, rootPem: ca.rootPem, issuerPem: ca.issuerPem },
    });
    const tpm = await openTpm(swtpm.tcti);
    const issuer = await createIssuer({ tpm, variant: 'qemu-vtpm', eventLogPath: '/nonexistent' });
    try {
      const attested = ekKeyHash(
        parseTpmtPublic(issuer.identity().ekPublic).key.export({ type: 'spki', format: 'der' }),
      );
      assert.equal(attested, eks[0]);
    } finally {
      await issuer.close();
      await tpm.close();
      await swtpm.stop();
    }
  });

  it('the signed inventory verifies with the owner key only, and any altered entry refuses it whole', () => {
    const seed = deriveOwnerSeed(randomBytes(32));
    const owner = parseOwnerPublicKey(ownerPublicKeyText(seed));
    const nodes = [
      { name: 'c-control-plane-0', role: 'control-plane' as const, eks: ['aa'.repeat(32)] },
      { name: 'c-worker-0', role: 'worker' as const, eks: ['bb'.repeat(32), 'cc'.repeat(32)] },
    ];
    const signed = signInventory(nodes, seed, 7);
    assert.deepEqual(verifyInventory(signed, owner), nodes);
    assert.equal(signed.serial, 7);
    assert.equal(signed.owner, ownerKeyId(owner), 'bound to the cluster of the owner key');
    const promoted = { ...signed, nodes: [nodes[0]!, { ...nodes[1]!, role: 'control-plane' as const }] };
    assert.throws(() => verifyInventory(promoted, owner), /signature does not verify/);
    // a serial or owner changed after signing is an altered inventory
    assert.throws(() => verifyInventory({ ...signed, serial: 8 }, owner), /signature does not verify/);
    const foreignKey = parseOwnerPublicKey(ownerPublicKeyText(deriveOwnerSeed(randomBytes(32))));
    assert.throws(
      () => verifyInventory(signed, foreignKey),
      new RegExp(
        `owner ${signed.owner}, this cluster's owner is ${ownerKeyId(foreignKey)} \\(another cluster's`,
      ),
    );
    assert.throws(
      () => verifyInventory({ ...signed, owner: ownerKeyId(foreignKey) }, foreignKey),
      /signature does not verify/,
    );
    assert.throws(
      () => signInventory(nodes, seed, 0),
      /inventory serial: expected a positive integer, got 0/,
    );
    const twice = signInventory(
      [...nodes, { name: 'c-worker-1', role: 'worker', eks: ['bb'.repeat(32)] }],
      seed,
      8,
    );
    assert.throws(() => verifyInventory(twice, owner), /EK b{64} appears twice/);
  });
});
