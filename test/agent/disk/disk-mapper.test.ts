// The disk-mapper's life on real LUKS2 files: first boot, a reboot before the join, commit to the cluster's disk
// key, rejoin with the right and a wrong key, mark for reset. This host has no device-mapper, so the mapping is the
// one neighbour swapped: the fake checks the key against the real header the way activation would.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, it } from 'node:test';
import { DiskMapper, WrongDiskKeyError } from '../../../agent/disk/disk-mapper.js';
import { HeaderRefusedError } from '../../../agent/disk/header-policy.js';
import { deriveDiskKey } from '../../../common/keys.js';
import { CryptDevice } from '../../../native/cryptsetup/device.js';
import { tempDir } from '../../harness/temp-dir.js';
import { blankDisk, digestOf, HOST_LAYOUT, KeyCheckMapping, rewriteHeaderJson } from './luks-files.js';

const master = { key: Buffer.alloc(32, 1), salt: Buffer.alloc(32, 2) };
const otherMaster = { key: Buffer.alloc(32, 3), salt: Buffer.alloc(32, 2) };

describe('disk-mapper on a real LUKS2 file', () => {
  const root = tempDir('sextant-disk-');
  let seq = 0;
  let dir: string;
  let disk: string;
  let mapping: KeyCheckMapping;
  const boot = () =>
    new DiskMapper({ disk, workDir: dir, name: 'sextant-state', layout: HOST_LAYOUT, mapping });

  // each test its own disk and work dir: what one boot left must not reach the next test
  beforeEach(async () => {
    dir = join(root, `boot-${seq++}`);
    await mkdir(dir);
    disk = await blankDisk(join(dir, 'state.img'));
    mapping = new KeyCheckMapping();
  });

  it('first boot formats, opens with a random key and marks the disk uninitialized', async () => {
    const mapper = boot();
    const prepared = await mapper.prepare();
    assert.equal(prepared.kind, 'fresh');
    assert.match(prepared.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.deepEqual(mapping.opened, ['sextant-state']);
    assert.equal(await mapper.state(), 'uninitialized');
    await mapper.close();
    assert.deepEqual(mapping.closed, ['sextant-state']);
  });

  it('wipes the opened mapping when the layout asks (integrity)', async () => {
    const mapper = new DiskMapper({
      disk,
      workDir: dir,
      name: 'x',
      layout: { ...HOST_LAYOUT, wipe: true },
      mapping,
    });
    const prepared = await mapper.prepare();
    assert.equal(prepared.kind === 'fresh' && prepared.path, '/dev/mapper/x');
    assert.deepEqual(mapping.wiped, ['/dev/mapper/x']);
    await mapper.close();
  });

  it('a reboot before init/join formats again, keeping the UUID (the disk ID), with a new key', async () => {
    const first = await boot().prepare();
    const before = await digestOf(disk);
    const second = await boot().prepare();
    assert.equal(second.kind, 'fresh');
    assert.equal(second.uuid, first.uuid);
    assert.notEqual(await digestOf(disk), before);
  });

  it('commit puts the cluster key for this UUID in keyslot 0; the rejoin key opens it after a reboot', async () => {
    const mapper = boot();
    const prepared = await mapper.prepare();
    const key = deriveDiskKey(master, prepared.uuid);
    await mapper.commit(key);
    assert.equal(await mapper.state(), 'initialized');
    await mapper.close();

    const again = boot();
    assert.deepEqual(await again.prepare(), { kind: 'initialized', uuid: prepared.uuid });
    assert.equal(await again.openWithKey(deriveDiskKey(master, prepared.uuid)), '/dev/mapper/sextant-state');
    await again.close();
    // the random key of the format is gone
    const device = await CryptDevice.init(disk);
    await device.load();
    assert.equal(await device.keyslotStatus(1), 1 /* inactive */);
    await device.free();
  });

  it('a wrong rejoin key is reported and leaves the disk untouched', async () => {
    const mapper = boot();
    const { uuid } = await mapper.prepare();
    await mapper.commit(deriveDiskKey(master, uuid));
    await mapper.close();
    const before = await digestOf(disk);
    const rejoin = boot();
    assert.equal((await rejoin.prepare()).kind, 'initialized');
    await assert.rejects(rejoin.openWithKey(deriveDiskKey(otherMaster, uuid)), WrongDiskKeyError);
    await assert.rejects(
      rejoin.openWithKey(deriveDiskKey(master, '00000000-0000-4000-8000-000000000000')),
      (err: Error) => {
        assert.ok(err instanceof WrongDiskKeyError);
        assert.doesNotMatch(err.message, /[0-9a-f]{64}/);
        return true;
      },
    );
    assert.equal(await digestOf(disk), before);
    assert.deepEqual(mapping.opened, ['sextant-state']);
  });

  it('a failed init/join after the node lock marks the header uninitialized; the next boot formats, same UUID', async () => {
    const mapper = boot();
    const { uuid } = await mapper.prepare();
    await mapper.commit(deriveDiskKey(master, uuid));
    await mapper.markForReset();
    await mapper.close();
    assert.equal(await boot().state(), 'uninitialized');
    const next = await boot().prepare();
    assert.deepEqual({ kind: next.kind, uuid: next.uuid }, { kind: 'fresh', uuid });
  });

  it('mark for reset works on a closed disk too (the failure came after a reboot)', async () => {
    const mapper = boot();
    const { uuid } = await mapper.prepare();
    await mapper.commit(deriveDiskKey(master, uuid));
    await mapper.close();
    await boot().markForReset();
    assert.equal(await boot().state(), 'uninitialized');
  });

  it('commit without a fresh format is refused; an uninitialized disk does not open with a key', async () => {
    const mapper = boot();
    await assert.rejects(mapper.commit(Buffer.alloc(32)), /commit needs a freshly formatted, open disk/);
    const fresh = await mapper.prepare();
    await mapper.close();
    await assert.rejects(
      boot().openWithKey(deriveDiskKey(master, fresh.uuid)),
      /the token says uninitialized/,
    );
  });

  it('a header the host swapped is refused at boot, and not reformatted', async () => {
    const mapper = boot();
    const { uuid } = await mapper.prepare();
    await mapper.commit(deriveDiskKey(master, uuid));
    await mapper.close();
    await rewriteHeaderJson(disk, (h) => {
      h.segments['0'].encryption = 'cipher_null-ecb';
    });
    const before = await digestOf(disk);
    await assert.rejects(boot().prepare(), HeaderRefusedError);
    await assert.rejects(boot().openWithKey(deriveDiskKey(master, uuid)), /cipher_null-ecb/);
    assert.equal(await digestOf(disk), before);
  });

  it("a token that is not the disk-mapper's is refused by name", async () => {
    await boot().prepare();
    await rewriteHeaderJson(disk, (h) => {
      h.tokens['0'].state = 'maybe';
    });
    await assert.rejects(
      boot().prepare(),
      /tokens\.0\.state: expected "uninitialized" or "initialized", got "maybe"/,
    );
  });
});
