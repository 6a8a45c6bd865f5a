import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import {
  describeDevicePath,
  describeEvent,
  type EventLog,
  eventsForPcr,
  ParseError,
  parseEventLog,
  replayEventLog,
  TPM_ALG,
} from '../../attestation/index.js';
import { FIXTURE_LOG, FIXTURE_YAML, fixturePcrs } from './helpers.js';

const execFileAsync = promisify(execFile);

interface YamlEvent {
  EventNum: string;
  PCRIndex: string;
  EventType: string;
  Digest?: string;
  Digests?: Array<{ AlgorithmId: string; Digest: string }>;
  EventSize: string;
  Event?: unknown;
}
interface YamlLog {
  events: YamlEvent[];
  pcrs: Record<string, Record<string, string>>;
}

const ALG_IDS: Record<string, number> = {
  sha1: TPM_ALG.SHA1,
  sha256: TPM_ALG.SHA256,
  sha384: TPM_ALG.SHA384,
  sha512: TPM_ALG.SHA512,
};

// failsafe schema: every scalar stays a string, so 0x… PCR values are not turned into lossy numbers
const readYaml = (text: string) => parse(text, { schema: 'failsafe' }) as YamlLog;

function assertAgrees(log: EventLog, y: YamlLog): void {
  assert.equal(log.events.length, y.events.length, 'event count');
  for (const [i, ye] of y.events.entries()) {
    const ev = log.events[i]!;
    const at = `event ${ye.EventNum}`;
    assert.equal(ev.index, Number(ye.EventNum), at);
    assert.equal(ev.pcr, Number(ye.PCRIndex), `${at} PCR`);
    assert.equal(ev.typeName, ye.EventType, `${at} type`);
    assert.equal(ev.data.length, Number(ye.EventSize), `${at} size`);
    if (ye.Digests) {
      assert.equal(ev.digests.size, ye.Digests.length, `${at} digest count`);
      for (const d of ye.Digests) {
        assert.equal(
          ev.digests.get(ALG_IDS[d.AlgorithmId]!)?.toString('hex'),
          d.Digest,
          `${at} ${d.AlgorithmId}`,
        );
      }
    } else {
      assert.equal(ev.digests.get(TPM_ALG.SHA1)?.toString('hex'), ye.Digest, `${at} header digest`);
    }
  }
  for (const [bank, values] of Object.entries(y.pcrs)) {
    const replay = replayEventLog(log, ALG_IDS[bank]!);
    assert.deepEqual(
      [...replay.keys()].sort((a, b) => a - b),
      Object.keys(values)
        .map(Number)
        .sort((a, b) => a - b),
      `${bank}: PCRs the log covers`,
    );
    for (const [pcr, hex] of Object.entries(values)) {
      assert.equal(`0x${replay.get(Number(pcr))!.toString('hex')}`, hex, `${bank} PCR ${pcr}`);
    }
  }
}

describe('TCG event log', () => {
  const bytes = readFileSync(FIXTURE_LOG);
  const log = parseEventLog(bytes);

  test('agrees with tpm2_eventlog on the captured OVMF+swtpm boot: events, types, digests, final PCRs (all banks)', () => {
    assertAgrees(log, readYaml(readFileSync(FIXTURE_YAML, 'utf8')));
    assert.equal(log.specId.algorithms.length, 4);
    assert.equal(log.specId.specVersion, '2.0.0');
  });

  test('the SHA-256 replay equals the PCRs the captured machine reported, for every PCR the log covers', () => {
    const pcrs = fixturePcrs();
    const replay = replayEventLog(log);
    assert.deepEqual(
      [...replay.keys()].sort((a, b) => a - b),
      [0, 1, 2, 3, 4, 5, 6, 7, 9],
    );
    for (const [pcr, value] of replay) assert.equal(value.toString('hex'), pcrs[String(pcr)], `PCR ${pcr}`);
  });

  test('agrees with a live tpm2_eventlog on a shortened log', {
    skip: !existsSync('/usr/bin/tpm2_eventlog'),
  }, async () => {
    // the first 12 events only: a log no one has seen, so the fixture YAML cannot be what agrees
    const cut = log.events[12]!.offset;
    const dir = await mkdtemp(join(tmpdir(), 'sextant-eventlog-'));
    try {
      await writeFile(join(dir, 'log.bin'), bytes.subarray(0, cut));
      const { stdout } = await execFileAsync('tpm2_eventlog', [join(dir, 'log.bin')]);
      const short = parseEventLog(bytes.subarray(0, cut));
      assert.equal(short.events.length, 12);
      assertAgrees(short, readYaml(stdout));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('describes events: firmware blobs, EFI variables, boot options, images with device paths, tags, actions', () => {
    const d = log.events.map(describeEvent);
    assert.equal(d[0], 'Spec ID event (log header)');
    assert.equal(d[2], 'firmware blob at 0x820000, 0xe0000 bytes');
    assert.equal(d[4], 'EFI variable SecureBoot (8be4df61-93ca-11d2-aa0d-00e098032b8c), value 00');
    assert.equal(d[7], 'EFI variable db (d719b2cb-3d3a-4596-a3bc-dad00e67656f), 0 bytes of data');
    assert.match(
      d[10]!,
      /^EFI image VenMedia\(1428f772-b64a-441e-b8c3-9ebdd7f893c7\)\/kernel, 14186432 bytes$/,
    );
    assert.match(d[12]!, /boot option "UiApp" Fv\(7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1\)\/FvFile\(/);
    assert.equal(d[13], 'Calling EFI Application from Boot Option');
    assert.equal(d[14], 'separator');
    assert.equal(d[22], 'tagged event 0x8f3b22ec: Linux initrd');
    assert.deepEqual(
      eventsForPcr(log, 4).map((e) => e.index),
      [10, 13, 18],
    );
  });

  test('device paths: PCI, ACPI, hard disk and file nodes', () => {
    const node = (type: number, sub: number, body: Buffer) => {
      const h = Buffer.alloc(4);
      h[0] = type;
      h[1] = sub;
      h.writeUInt16LE(body.length + 4, 2);
      return Buffer.concat([h, body]);
    };
    const acpi = Buffer.alloc(8);
    acpi.writeUInt32LE(0x0a0341d0, 0);
    const hd = Buffer.alloc(38);
    hd.writeUInt32LE(1, 0);
    hd[36] = 2;
    hd[37] = 2;
    const path = Buffer.concat([
      node(2, 1, acpi),
      node(1, 1, Buffer.from([0, 3])),
      node(4, 1, hd),
      node(4, 4, Buffer.from('\\EFI\\BOOT\\BOOTX64.EFI\0', 'utf16le')),
      node(0x7f, 0xff, Buffer.alloc(0)),
    ]);
    assert.equal(
      describeDevicePath(path),
      'PciRoot(0x0)/Pci(0x3,0x0)/HD(1,GPT,00000000-0000-0000-0000-000000000000)/\\EFI\\BOOT\\BOOTX64.EFI',
    );
  });

  test('a StartupLocality event sets PCR 0 before replay', () => {
    // header, then EV_NO_ACTION "StartupLocality" locality 3 in PCR 0, then one event in PCR 0
    const header = bytes.subarray(0, log.events[1]!.offset);
    const sha256Only = (pcr: number, type: number, digest: Buffer, data: Buffer) => {
      const parts: Buffer[] = [];
      const head = Buffer.alloc(12);
      head.writeUInt32LE(pcr, 0);
      head.writeUInt32LE(type, 4);
      head.writeUInt32LE(1, 8);
      parts.push(head);
      const alg = Buffer.alloc(2);
      alg.writeUInt16LE(TPM_ALG.SHA256);
      parts.push(alg, digest);
      const size = Buffer.alloc(4);
      size.writeUInt32LE(data.length);
      parts.push(size, data);
      return Buffer.concat(parts);
    };
    const locality = Buffer.concat([Buffer.from('StartupLocality\0', 'latin1'), Buffer.from([3])]);
    const digest = Buffer.alloc(32, 0x11);
    const synthetic = Buffer.concat([
      header,
      sha256Only(0, 3, Buffer.alloc(32), locality),
      sha256Only(0, 8, digest, Buffer.alloc(2)),
    ]);
    const replay = replayEventLog(parseEventLog(synthetic));
    const init = Buffer.alloc(32);
    init[31] = 3;
    const expected = createHash('sha256').update(init).update(digest).digest();
    assert.deepEqual(replay.get(0), expected);
    assert.match(describeEvent(parseEventLog(synthetic).events[1]!), /startup locality 3/);
  });

  test('malformed logs fail with the byte offset', () => {
    const offsetOf = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        assert.ok(err instanceof ParseError, String(err));
        assert.match(err.message, /^event log at byte offset \d+: /);
        return err.offset;
      }
      assert.fail('expected a ParseError');
    };
    assert.equal(
      offsetOf(() => parseEventLog(Buffer.alloc(0))),
      0,
    );
    // truncated inside event 24 (which starts at 5028)
    const truncatedAt = offsetOf(() => parseEventLog(bytes.subarray(0, bytes.length - 3)));
    assert.ok(truncatedAt >= 5028, `offset ${truncatedAt}`);
    // not a crypto-agile log: Spec ID signature changed (event data starts at 32)
    const badSig = Buffer.from(bytes);
    badSig[32] = 0x58;
    assert.equal(
      offsetOf(() => parseEventLog(badSig)),
      32,
    );
    // a digest algorithm the header did not declare, in event 1 (starts at 77; first hashAlg at 89)
    const badAlg = Buffer.from(bytes);
    badAlg.writeUInt16LE(0x0012, 89);
    assert.equal(
      offsetOf(() => parseEventLog(badAlg)),
      89,
    );
    // an absurd event size runs past the end
    const badSize = Buffer.from(bytes);
    badSize.writeUInt32LE(0xffffff, 77 + 12 + 22 + 34 + 50 + 66);
    assert.ok(offsetOf(() => parseEventLog(badSize)) > 77);
    // a log without a SHA-256 bank cannot be replayed for our PCRs
    assert.throws(
      () => replayEventLog({ ...log, specId: { ...log.specId, algorithms: [] } }),
      /no sha256 bank/,
    );
  });
});
