// The header allowlist on real LUKS2 files: libcryptsetup writes the header, the "host" rewrites it (valid
// checksums), and the disk-mapper must refuse every swap, naming what differs, before it opens anything.
import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { DiskMapper } from '../../../agent/disk/disk-mapper.js';
import { HeaderRefusedError, headerDifferences } from '../../../agent/disk/header-policy.js';
import { STATE_DISK_LAYOUT } from '../../../agent/disk/layout.js';
import { tokenJson } from '../../../agent/disk/token.js';
import { CryptDevice } from '../../../native/cryptsetup/device.js';
import { tempDir } from '../../harness/temp-dir.js';
import { blankDisk, type HeaderJson, rewriteHeaderJson } from './luks-files.js';

// This host has no device-mapper, so libcryptsetup cannot format dm-integrity here (the VM end to end does). The
// allowed header is made by formatting without integrity and writing the integrity segment in, as a VM's format has.
async function allowedDisk(path: string): Promise<void> {
  await blankDisk(path);
  const device = await CryptDevice.init(path);
  await device.format({ ...STATE_DISK_LAYOUT.format, integrity: null, volumeKeyBytes: 64 });
  await device.addKeyslotByVolumeKey(0, Buffer.alloc(32, 7));
  await device.setTokenJson(0, tokenJson('initialized'));
  await device.free();
  await rewriteHeaderJson(path, (h) => {
    h.keyslots['0'].key_size = 96;
    h.segments['0'].integrity = {
      type: 'hmac(sha256)',
      journal_encryption: 'none',
      journal_integrity: 'none',
    };
  });
}

const cases: { name: string; swap: (h: HeaderJson) => void; names: RegExp }[] = [
  {
    name: 'cipher_null data segment',
    swap: (h) => {
      h.segments['0'].encryption = 'cipher_null-ecb';
    },
    names: /segments\.0\.encryption: expected "aes-xts-plain64", got "cipher_null-ecb"/,
  },
  {
    name: 'integrity removed',
    swap: (h) => {
      delete h.segments['0'].integrity;
      h.keyslots['0'].key_size = 64;
    },
    names: /segments\.0: missing "integrity"/,
  },
  {
    name: 'unknown KDF',
    swap: (h) => {
      h.keyslots['0'].kdf.type = 'scrypt';
    },
    names: /keyslots\.0\.kdf\.type: expected "pbkdf2", got "scrypt"/,
  },
  {
    name: 'cheap argon2i KDF',
    swap: (h) => {
      h.keyslots['0'].kdf = { type: 'argon2i', time: 4, memory: 32, cpus: 1, salt: h.keyslots['0'].kdf.salt };
    },
    names: /keyslots\.0\.kdf: unexpected "time", "memory", "cpus"/,
  },
  {
    name: 'extra keyslot the host knows',
    swap: (h) => {
      const extra = structuredClone(h.keyslots['0']);
      extra.area.offset = String(Number(extra.area.offset) + Number(extra.area.size));
      h.keyslots['7'] = extra;
      h.digests['0'].keyslots.push('7');
    },
    names: /keyslots\.7: unexpected keyslot \(allowed: 0, 1\)/,
  },
  {
    name: 'second segment in the clear',
    swap: (h) => {
      h.segments['0'].size = String(2 * 1024 * 1024);
      h.segments['1'] = { type: 'linear', offset: String(18 * 1024 * 1024), size: 'dynamic' };
    },
    names: /segments: unexpected "1"/,
  },
  {
    name: 'data offset moved into the keyslot area',
    swap: (h) => {
      h.segments['0'].offset = String(8 * 1024 * 1024);
    },
    names: /segments\.0\.offset: expected "16777216", got "8388608"/,
  },
  {
    name: 'foreign token',
    swap: (h) => {
      h.tokens['1'] = { type: 'systemd-tpm2', keyslots: ['0'] };
    },
    names: /tokens\.1: unexpected token/,
  },
  {
    name: 'token naming a keyslot',
    swap: (h) => {
      h.tokens['0'].keyslots = ['0'];
    },
    names: /tokens\.0\.keyslots: expected \[\], got \["0"\]/,
  },
  {
    name: '512-byte sectors',
    swap: (h) => {
      h.segments['0'].sector_size = 512;
    },
    names: /segments\.0\.sector_size: expected 4096, got 512/,
  },
  {
    name: 'pending reencryption requirement',
    swap: (h) => {
      h.config.requirements = { mandatory: ['online-reencrypt-v2'] };
    },
    names: /config: unexpected "requirements"/,
  },
];

describe('LUKS2 header allowlist on real files', () => {
  const dir = tempDir('sextant-disk-');
  const allowed = join(dir, 'allowed.img');
  before(() => allowedDisk(allowed));

  it('accepts the header the disk-mapper writes', async () => {
    const mapper = new DiskMapper({ disk: allowed, workDir: dir, name: 'test' });
    assert.equal(await mapper.state(), 'initialized');
  });

  it('refuses a header formatted without integrity, as it comes', async () => {
    const disk = await blankDisk(join(dir, 'plain.img'));
    const device = await CryptDevice.init(disk);
    await device.format({ ...STATE_DISK_LAYOUT.format, integrity: null, volumeKeyBytes: 64 });
    await device.addKeyslotByVolumeKey(0, Buffer.alloc(32, 7));
    await device.free();
    const mapper = new DiskMapper({ disk, workDir: dir, name: 'test' });
    await assert.rejects(mapper.state(), (err: Error) => {
      assert.ok(err instanceof HeaderRefusedError);
      assert.match(err.message, /segments\.0: missing "integrity"/);
      assert.match(err.message, /keyslots\.0\.key_size: expected 96, got 64/);
      return true;
    });
  });

  for (const c of cases) {
    it(`refuses: ${c.name}`, async () => {
      const disk = join(dir, `${c.name.replace(/\W+/g, '-')}.img`);
      await copyFile(allowed, disk);
      await rewriteHeaderJson(disk, c.swap);
      const mapper = new DiskMapper({ disk, workDir: dir, name: 'test' });
      await assert.rejects(mapper.state(), (err: Error) => {
        assert.ok(err instanceof HeaderRefusedError, `${err.name}: ${err.message}`);
        assert.match(err.message, c.names);
        return true;
      });
    });
  }

  it('names malformed JSON and a non-object', () => {
    assert.deepEqual(headerDifferences('{', STATE_DISK_LAYOUT), ['header: not JSON']);
    assert.deepEqual(headerDifferences('[]', STATE_DISK_LAYOUT), ['header: expected an object, got []']);
  });
});
