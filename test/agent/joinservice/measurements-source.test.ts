// The measurements floor survives a restart: an earlier (file, MAC) pair put back while the agent is down is refused.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { openMeasurementsSource } from '../../../agent/joinservice/measurements-source.js';
import { statePath } from '../../../agent/lifecycle/layout.js';
import { measurementsMac } from '../../../attestation/measurements.js';
import { recordingLog } from '../../harness/recording-log.js';
import { tempDir } from '../../harness/temp-dir.js';
import { publishMeasurements, serialDoc, serialVerifier, servedSerial } from './serial-measurements.js';

const root = tempDir('sextant-measurements-floor-');

const macKey = randomBytes(32);

/** One JoinService start on `stateDir`, the way launch does it, with the cluster secrets' measurements `shipped`. */
const start = (stateDir: string, shipped: number, log = recordingLog(), key: Buffer = macKey) =>
  openMeasurementsSource({
    stateDir,
    shipped: serialDoc(shipped),
    makeVerifier: serialVerifier,
    log,
    macKey: key,
  });

/** An operator's upgrade, as it lands in the state directory: the MAC under the cluster key, then the file. */
const publish = (stateDir: string, serial: number, key: Buffer = macKey) =>
  publishMeasurements(
    statePath(stateDir, 'measurements'),
    serialDoc(serial),
    key,
    statePath(stateDir, 'measurementsMac'),
  );

/** A state directory whose JoinService ran serial 1, took the upgrade to serial 2, and stopped. */
async function upgradedTo2(name: string): Promise<string> {
  const stateDir = join(root, name);
  const source = await start(stateDir, 1);
  await publish(stateDir, 2);
  assert.equal(await source.reload(), true, 'the upgrade to serial 2 is taken');
  source.close();
  return stateDir;
}

describe('openMeasurementsSource', () => {
  it('a first start writes the shipped document, its MAC and a 0600 floor at its serial', async () => {
    const stateDir = join(root, 'first');
    const source = await start(stateDir, 3);
    assert.equal(source.serial, 3);
    assert.equal(await readFile(statePath(stateDir, 'measurements'), 'utf8'), serialDoc(3));
    assert.deepEqual(
      await readFile(statePath(stateDir, 'measurementsMac')),
      measurementsMac(macKey, Buffer.from(serialDoc(3))),
    );
    const floor = statePath(stateDir, 'measurementsFloor');
    assert.equal(JSON.parse(await readFile(floor, 'utf8')).serial, 3);
    assert.equal((await stat(floor)).mode & 0o777, 0o600);
  });

  it('a reload raises the floor on disk before the new serial is served', async () => {
    const stateDir = await upgradedTo2('raised');
    assert.equal(JSON.parse(await readFile(statePath(stateDir, 'measurementsFloor'), 'utf8')).serial, 2);
  });

  it('a restart after an upgrade serves the upgrade, not the older copy in the cluster secrets', async () => {
    const stateDir = await upgradedTo2('restart');
    const source = await start(stateDir, 1);
    assert.equal(source.serial, 2);
    assert.equal(await servedSerial(source), 2);
    assert.equal(await readFile(statePath(stateDir, 'measurements'), 'utf8'), serialDoc(2), 'left as it was');
  });

  it('a restart with a higher shipped document than the pair on disk serves the shipped one', async () => {
    const stateDir = await upgradedTo2('shipped-higher');
    const source = await start(stateDir, 4);
    assert.equal(await servedSerial(source), 4);
    assert.equal(await readFile(statePath(stateDir, 'measurements'), 'utf8'), serialDoc(4));
    assert.equal(JSON.parse(await readFile(statePath(stateDir, 'measurementsFloor'), 'utf8')).serial, 4);
  });

  it('a pair on disk whose MAC does not verify is ignored and said; the shipped one at the floor serves', async () => {
    const stateDir = join(root, 'bad-mac');
    await start(stateDir, 2);
    await publish(stateDir, 5, randomBytes(32));
    const log = recordingLog();
    const source = await start(stateDir, 2, log);
    assert.equal(await servedSerial(source), 2);
    assert.ok(
      log.lines.some((l) => /ignored: .*its MAC does not verify/.test(l)),
      log.lines.join('\n'),
    );
    assert.equal(await readFile(statePath(stateDir, 'measurements'), 'utf8'), serialDoc(2), 'rewritten');
  });

  // each: what was done to the state directory while the agent was down, and what the restart says
  const refused: Array<{ name: string; tamper: (stateDir: string) => Promise<void>; error: RegExp }> = [
    {
      name: 'the earlier (file, MAC) pair put back',
      tamper: (stateDir) => publish(stateDir, 1),
      error: /measurements serial 1 is below the serial 2 this JoinService has accepted/,
    },
    {
      name: 'the pair removed (the cluster secrets still hold serial 1)',
      tamper: async (stateDir) => {
        await rm(statePath(stateDir, 'measurements'));
        await rm(statePath(stateDir, 'measurementsMac'));
      },
      error: /measurements serial 1 is below the serial 2/,
    },
    {
      name: 'the earlier pair put back and the floor removed',
      tamper: async (stateDir) => {
        await publish(stateDir, 1);
        await rm(statePath(stateDir, 'measurementsFloor'));
      },
      error: /the measurements serial floor is missing/,
    },
    {
      name: 'the floor lowered by hand',
      tamper: async (stateDir) => {
        const path = statePath(stateDir, 'measurementsFloor');
        const floor = JSON.parse(await readFile(path, 'utf8'));
        await writeFile(path, JSON.stringify({ ...floor, serial: 1 }));
        await publish(stateDir, 1);
      },
      error: /measurements serial floor: its MAC does not verify/,
    },
    {
      name: 'the floor replaced by one that does not parse',
      tamper: (stateDir) => writeFile(statePath(stateDir, 'measurementsFloor'), '{"serial": -1}'),
      error: /measurements serial floor: serial: expected the highest serial accepted/,
    },
  ];
  for (const r of refused) {
    it(`a restart after ${r.name} refuses to serve, naming why`, async () => {
      const stateDir = await upgradedTo2(`refused-${refused.indexOf(r)}`);
      await r.tamper(stateDir);
      await assert.rejects(() => start(stateDir, 1), r.error);
    });
  }

  it("a floor made under another cluster's key does not verify", async () => {
    const stateDir = await upgradedTo2('other-key');
    await assert.rejects(
      () => start(stateDir, 2, recordingLog(), randomBytes(32)),
      /its MAC does not verify/,
    );
  });
});
