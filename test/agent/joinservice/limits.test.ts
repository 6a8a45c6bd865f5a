// The call limits against a flood from many addresses: one network's addresses share a /24 or /64
// bucket, and a share of the TPM budget stays for callers the JoinService vouched for (ProveOwner passed, an EK
// admitted), so a flood from many addresses cannot starve a legitimate join.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CallLimits, PeerRateLimiter, peerPrefix } from '../../../agent/joinservice/limits.js';

describe('peerPrefix', () => {
  const cases: [string, string][] = [
    ['10.1.2.3', '10.1.2.0/24'],
    ['::ffff:10.1.2.3', '10.1.2.0/24'],
    ['fd00:1:2:3:4:5:6:7', 'fd00:1:2:3::/64'],
    ['fd00:0001:0002:0003::9', 'fd00:1:2:3::/64'],
    ['fd00::1', 'fd00:0:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['unix:/x', 'unix:/x'],
  ];
  for (const [host, want] of cases) it(`${host} → ${want}`, () => assert.equal(peerPrefix(host), want));
});

describe('PeerRateLimiter per network', () => {
  const flood = (limiter: PeerRateLimiter, hosts: string[], calls: number) =>
    hosts.flatMap((h) => Array.from({ length: calls }, () => limiter.allow(h))).filter(Boolean).length;
  const v4 = (net: string, n: number) => Array.from({ length: n }, (_, i) => `${net}.${i + 1}`);
  const v6 = (net: string, n: number) =>
    Array.from({ length: n }, (_, i) => `${net}::${(i + 1).toString(16)}`);
  const cases: { name: string; hosts: string[]; calls: number; allowed: number }[] = [
    // the review's figure: 60 addresses × 10 calls got 271 through (against 100 for one address at 10/s); now 40
    { name: '60 addresses of one /24', hosts: v4('10.9.0', 60), calls: 10, allowed: 40 },
    { name: '60 addresses of one /64', hosts: v6('fd00:9:0:1', 60), calls: 10, allowed: 40 },
    { name: 'one address alone keeps its own burst', hosts: ['10.9.0.1'], calls: 20, allowed: 10 },
    {
      name: 'two /24s have a bucket each',
      hosts: [...v4('10.9.1', 30), ...v4('10.9.2', 30)],
      calls: 10,
      allowed: 80,
    },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.allowed} calls of ${c.hosts.length * c.calls}`, () => {
      assert.equal(flood(new PeerRateLimiter(10, 2, () => 0), c.hosts, c.calls), c.allowed);
    });
  }

  it('a network refills at 4× one address’s rate', () => {
    let now = 0;
    const limiter = new PeerRateLimiter(10, 2, () => now);
    assert.equal(flood(limiter, v4('10.9.3', 60), 10), 40);
    now += 1000;
    assert.equal(flood(limiter, v4('10.9.3', 60), 1), 8);
  });
});

describe('CallLimits: the reserved TPM share', () => {
  it('a flood from many addresses empties the open budget; a vouched-for caller still gets its Attest', async () => {
    const limits = new CallLimits({ tpmOpsBurst: 40, tpmOpsPerSecond: 0.001, burstPerPeer: 100 }, () => 0);
    let flooded = 0;
    for (let i = 0; i < 200; i++) {
      const host = `ipv4:10.${8 + (i % 100)}.${Math.floor(i / 100)}.1:5000`;
      await limits.admit(host, 2).then(
        (release) => {
          flooded++;
          release();
        },
        (err: Error) => assert.match(err.message, /TPM operation budget exhausted/),
      );
    }
    assert.equal(flooded, 15, '30 of 40 operations are open to anyone, 2 per Attest');
    await assert.rejects(limits.admit('ipv4:10.200.0.7:5000', 2), /TPM operation budget exhausted/);
    limits.vouch('ipv4:10.200.0.7:41000');
    const release = await limits.admit('ipv4:10.200.0.7:5000', 2);
    release();
    // and only as far as its own share goes: 10 operations
    let more = 0;
    for (let i = 0; i < 10; i++)
      await limits.admit('ipv4:10.200.0.7:5001', 2).then(
        () => more++,
        () => {},
      );
    assert.equal(more, 4);
  });

  it('a vouch expires after 30 minutes', async () => {
    let now = 0;
    const limits = new CallLimits(
      { tpmOpsBurst: 4, tpmOpsPerSecond: 0.000001, tpmReservedShare: 0.5 },
      () => now,
    );
    (await limits.admit('ipv4:10.1.1.1:1', 2))();
    limits.vouch('ipv4:10.1.1.2:1');
    now += 31 * 60_000;
    await assert.rejects(limits.admit('ipv4:10.1.1.2:1', 2), /TPM operation budget exhausted/);
  });

  it('refuses a reserved share outside [0, 1), naming it', () => {
    assert.throws(
      () => new CallLimits({ tpmReservedShare: 1 }),
      /tpmReservedShare: expected a share in \[0, 1\), got 1/,
    );
  });
});
