// @tier system: swtpm
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openTpm } from '../../../native/tpm/index.js';
import { createSwtpmCa, removeSwtpmCa, startSwtpm } from '../../harness/swtpm.js';

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

test('swtpm harness: shared CA, kept state across stop/start, nothing left behind', async () => {
  const ca = await createSwtpmCa();
  const stateParent = await mkdtemp(join(tmpdir(), 'sextant-harness-test-'));
  const stateDir = join(stateParent, 'node-1');
  try {
    const a = await startSwtpm({ ca, stateDir });
    const b = await startSwtpm({ ca });
    assert.notEqual(a.port, b.port);
    assert.equal(a.ctrlPort, a.port + 1, 'the swtpm TCTI expects the control port at port + 1');
    assert.equal(a.ca.rootPem, b.ca.rootPem);
    assert.match(a.ca.rootPem, /BEGIN CERTIFICATE/);
    assert.ok(await listening(a.port));

    // The EK certificate of a TPM manufactured in a kept state directory survives a full stop and start.
    let tpm = await openTpm(a.tcti);
    const ek = await tpm.readEndorsementKey();
    await tpm.close();
    await a.stop();
    assert.ok(!(await listening(a.port)), 'swtpm is gone after stop()');
    assert.ok(existsSync(join(stateDir, 'tpm2-00.permall')), 'a given state directory is kept');
    const again = await startSwtpm({ ca, stateDir });
    tpm = await openTpm(again.tcti);
    assert.deepEqual((await tpm.readEndorsementKey()).certificate, ek.certificate);
    await tpm.close();
    await again.stop();

    const bState = b.stateDir;
    await b.stop();
    assert.ok(!(await listening(b.port)));
    assert.ok(!existsSync(bState), 'a temporary state directory is removed on stop()');
  } finally {
    removeSwtpmCa(ca);
    await rm(stateParent, { recursive: true, force: true });
  }
  assert.ok(!existsSync(ca.dir));
});
