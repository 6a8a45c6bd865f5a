import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { u16, u32 } from '../../common/big-endian.js';

describe('big-endian integers (TPM wire order)', () => {
  const cases: [string, Buffer, string][] = [
    ['u16 of 0x000b (TPM_ALG_SHA256)', u16(0x000b), '000b'],
    ['u16 of 0xffff', u16(0xffff), 'ffff'],
    ['u32 of 0x0000016a (TPM_CC_PolicyAuthorize)', u32(0x0000016a), '0000016a'],
    ['u32 of 0xffffffff', u32(0xffffffff), 'ffffffff'],
  ];
  for (const [name, got, hex] of cases) it(name, () => assert.equal(got.toString('hex'), hex));

  it('refuses a value that does not fit, as Buffer does', () => {
    assert.throws(() => u16(0x10000), RangeError);
    assert.throws(() => u32(-1), RangeError);
  });
});
