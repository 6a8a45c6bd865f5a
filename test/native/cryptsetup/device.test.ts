// The libcryptsetup binding on plain files (this host has no device-mapper: format, keyslots, tokens, header JSON,
// backup/restore, wipe and passphrase checks all work on files; opening a mapping is for the VMs).
import assert from 'node:assert/strict';
import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CRYPT_ANY_SLOT, CryptDevice, type FormatOptions } from '../../../native/cryptsetup/device.js';
import { CryptError } from '../../../native/cryptsetup/errors.js';
import { blankDisk } from '../../agent/disk/luks-files.js';
import { tempDir } from '../../harness/temp-dir.js';

const FORMAT: FormatOptions = {
  cipher: 'aes',
  cipherMode: 'xts-plain64',
  volumeKeyBytes: 64,
  integrity: null,
  sectorSize: 4096,
  pbkdf: { type: 'pbkdf2', hash: 'sha256', iterations: 1000 },
};
const A = Buffer.from('passphrase-a');
const B = Buffer.from('passphrase-b');

describe('libcryptsetup through koffi', () => {
  const dir = tempDir('sextant-disk-');

  async function formatted(name: string, opts: Partial<FormatOptions> = {}): Promise<CryptDevice> {
    const path = await blankDisk(join(dir, name));
    const device = await CryptDevice.init(path);
    await device.format({ ...FORMAT, ...opts });
    return device;
  }

  it('formats LUKS2 with the UUID it is given and the minimal PBKDF2', async () => {
    const uuid = '0f3c2b1a-9e8d-4c7b-a6f5-e4d3c2b1a098';
    const device = await formatted('uuid.img', { uuid, label: 'state' });
    assert.equal(await device.addKeyslotByVolumeKey(0, A), 0);
    assert.equal(await device.uuid(), uuid);
    const header = JSON.parse(await device.dumpJson());
    assert.equal(header.segments['0'].encryption, 'aes-xts-plain64');
    assert.equal(header.segments['0'].sector_size, 4096);
    assert.deepEqual(
      { type: header.keyslots['0'].kdf.type, iterations: header.keyslots['0'].kdf.iterations },
      { type: 'pbkdf2', iterations: 1000 },
    );
    const magic = Buffer.alloc(6);
    const handle = await open(device.path, 'r');
    await handle.read(magic, 0, 6, 0);
    await handle.close();
    assert.equal(magic.toString('latin1'), 'LUKS\xba\xbe');
    await device.free();
  });

  it('checks passphrases, adds, changes and destroys keyslots', async () => {
    const device = await formatted('slots.img');
    await device.addKeyslotByVolumeKey(0, A);
    assert.equal(await device.activateByPassphrase(null, CRYPT_ANY_SLOT, A), 0);
    await assert.rejects(device.activateByPassphrase(null, CRYPT_ANY_SLOT, B), (err: Error) => {
      assert.ok(err instanceof CryptError);
      assert.equal(err.code, 'EPERM');
      assert.match(err.message, /check passphrase for .*slots\.img failed \(EPERM\)/);
      assert.doesNotMatch(err.message, /passphrase-/);
      return true;
    });
    assert.equal(await device.addKeyslotByPassphrase(1, A, B), 1);
    assert.equal(await device.keyslotStatus(1), 2 /* active */);
    assert.equal(await device.changeKeyslot(0, 0, A, Buffer.from('passphrase-c')), 0);
    await assert.rejects(device.activateByPassphrase(null, 0, A), /EPERM/);
    assert.equal(await device.activateByPassphrase(null, 0, Buffer.from('passphrase-c')), 0);
    await device.destroyKeyslot(1);
    assert.equal(await device.keyslotStatus(1), 1 /* inactive */);
    const key = await device.volumeKey(0, Buffer.from('passphrase-c'), 64);
    assert.equal(key.length, 64);
    await device.free();
  });

  it('writes, reads and removes JSON tokens', async () => {
    const device = await formatted('tokens.img');
    await device.addKeyslotByVolumeKey(0, A);
    assert.equal(await device.tokenJson(0), null);
    const token = { type: 'sextant-disk', keyslots: [], state: 'uninitialized' };
    assert.equal(await device.setTokenJson(0, JSON.stringify(token)), 0);
    assert.deepEqual(JSON.parse((await device.tokenJson(0)) ?? 'null'), token);
    await assert.rejects(device.setTokenJson(1, '{"no type":1}'), /write token 1 .* failed/);
    await device.setTokenJson(0, null);
    assert.equal(await device.tokenJson(0), null);
    await device.free();
  });

  it('backs the header up to a detached copy that loads, and restores it onto another disk', async () => {
    const device = await formatted('backup.img');
    await device.addKeyslotByVolumeKey(0, A);
    const copy = join(dir, 'backup.hdr');
    await device.headerBackup(copy);
    assert.equal((await stat(copy)).mode & 0o077, 0, 'the header copy is private to its owner');
    await assert.rejects(device.headerBackup(copy), /back up header/);
    const detached = await CryptDevice.init(copy, device.path);
    await detached.load();
    assert.equal(await detached.uuid(), await device.uuid());
    assert.equal(await detached.dumpJson(), await device.dumpJson());
    assert.equal(await detached.activateByPassphrase(null, 0, A), 0);
    await detached.free();

    const other = await CryptDevice.init(await blankDisk(join(dir, 'restored.img')));
    await other.headerRestore(copy);
    await other.load();
    assert.equal(await other.uuid(), await device.uuid());
    await other.free();
    await device.free();
  });

  it('wipes a region of the data device', async () => {
    const path = await blankDisk(join(dir, 'wipe.img'));
    const handle = await open(path, 'r+');
    await handle.write(Buffer.alloc(1 << 20, 0xaa), 0, 1 << 20, 17 << 20);
    await handle.close();
    const device = await CryptDevice.init(path);
    await device.format(FORMAT);
    await device.wipe({ offset: 17n << 20n, length: 1n << 20n, blockBytes: 1 << 20, directIo: false });
    await device.free();
    const bytes = await readFile(path);
    assert.ok(bytes.subarray(17 << 20, 18 << 20).every((b) => b === 0));
  });

  it('serializes calls from many devices and keeps the event loop turning during slow ones', async () => {
    const devices = await Promise.all(['q1.img', 'q2.img', 'q3.img'].map((n) => formatted(n)));
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const slots = await Promise.all(
      devices.map((d) =>
        d
          .setPbkdf({ type: 'pbkdf2', hash: 'sha256', iterations: 300_000 })
          .then(() => d.addKeyslotByVolumeKey(0, A)),
      ),
    );
    clearInterval(timer);
    assert.deepEqual(slots, [0, 0, 0]);
    assert.ok(ticks > 0, `the event loop ran ${ticks} timers during three slow keyslot adds`);
    for (const d of devices) await d.free();
    await assert.rejects(devices[0]?.uuid() ?? Promise.resolve(), /used after free/);
  });

  it('names the device when it is no LUKS2 device', async () => {
    const device = await CryptDevice.init(await blankDisk(join(dir, 'blank.img')));
    await assert.rejects(device.load(), (err: Error) => {
      assert.ok(err instanceof CryptError);
      assert.match(err.message, /load LUKS2 header of .*blank\.img failed \(EINVAL\)/);
      return true;
    });
    await device.free();
    await assert.rejects(CryptDevice.init(join(dir, 'missing.img')), /init .*missing\.img failed/);
  });
});
