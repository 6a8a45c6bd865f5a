// LUKS2 header work through the koffi binding vs the same steps through the cryptsetup CLI (Debian cryptsetup-bin),
// on plain files (this host has no device-mapper). Run: npx tsx test/bench/cryptsetup.bench.ts [iterations] (default 10)
import { execFile } from 'node:child_process';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CRYPT_ANY_SLOT, CryptDevice } from '../../native/cryptsetup/device.js';

const execFileAsync = promisify(execFile);
const N = Math.max(5, Number(process.argv[2] ?? 10));
const PASS = 'a'.repeat(64);
const NEW = 'b'.repeat(64);
const TOKEN = JSON.stringify({ type: 'sextant-disk', keyslots: [], state: 'uninitialized' });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;
const dir = await mkdtemp(join(tmpdir(), 'sextant-luks-bench-'));
async function blank(name: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, '');
  await truncate(path, 20 << 20);
  return path;
}
const cli = (...args: string[]) => execFileAsync('cryptsetup', args, { maxBuffer: 1 << 20 });
const passFile = join(dir, 'pass');
const newFile = join(dir, 'new');
const tokenFile = join(dir, 'token.json');
await writeFile(passFile, PASS, { mode: 0o600 });
await writeFile(newFile, NEW, { mode: 0o600 });
await writeFile(tokenFile, TOKEN);

type Steps = Record<string, number[]>;
const ffi: Steps = {};
const tool: Steps = {};
const add = (s: Steps, k: string, t0: number) => {
  const list = s[k] ?? [];
  list.push(performance.now() - t0);
  s[k] = list;
};

try {
  for (let i = 0; i < N; i++) {
    // FFI: format + keyslot 0, token, dump, change keyslot, check a passphrase, header backup
    const f = await blank(`ffi-${i}.img`);
    let t = performance.now();
    const d = await CryptDevice.init(f);
    await d.format({
      cipher: 'aes',
      cipherMode: 'xts-plain64',
      volumeKeyBytes: 64,
      integrity: null,
      sectorSize: 4096,
      pbkdf: { type: 'pbkdf2', hash: 'sha256', iterations: 1000 },
    });
    await d.addKeyslotByVolumeKey(0, Buffer.from(PASS));
    add(ffi, 'format + keyslot 0', t);
    t = performance.now();
    await d.setTokenJson(0, TOKEN);
    add(ffi, 'token import', t);
    t = performance.now();
    JSON.parse(await d.dumpJson());
    add(ffi, 'header JSON dump', t);
    t = performance.now();
    await d.changeKeyslot(0, 0, Buffer.from(PASS), Buffer.from(NEW));
    add(ffi, 'change keyslot 0', t);
    t = performance.now();
    await d.activateByPassphrase(null, CRYPT_ANY_SLOT, Buffer.from(NEW));
    add(ffi, 'check passphrase', t);
    t = performance.now();
    await d.headerBackup(`${f}.hdr`);
    add(ffi, 'header backup', t);
    await d.free();

    const c = await blank(`cli-${i}.img`);
    t = performance.now();
    await cli(
      'luksFormat',
      '--batch-mode',
      '--type',
      'luks2',
      '--cipher',
      'aes-xts-plain64',
      '--key-size',
      '512',
      '--sector-size',
      '4096',
      '--pbkdf',
      'pbkdf2',
      '--pbkdf-force-iterations',
      '1000',
      '--key-file',
      passFile,
      c,
    );
    add(tool, 'format + keyslot 0', t);
    t = performance.now();
    await cli('token', 'import', '--token-id', '0', '--json-file', tokenFile, c);
    add(tool, 'token import', t);
    t = performance.now();
    JSON.parse((await cli('luksDump', '--dump-json-metadata', c)).stdout);
    add(tool, 'header JSON dump', t);
    t = performance.now();
    await cli(
      'luksChangeKey',
      '--batch-mode',
      '--pbkdf',
      'pbkdf2',
      '--pbkdf-force-iterations',
      '1000',
      '--key-slot',
      '0',
      '--key-file',
      passFile,
      c,
      newFile,
    );
    add(tool, 'change keyslot 0', t);
    t = performance.now();
    await cli('open', '--test-passphrase', '--key-file', newFile, c);
    add(tool, 'check passphrase', t);
    t = performance.now();
    await cli('luksHeaderBackup', '--header-backup-file', `${c}.hdr`, c);
    add(tool, 'header backup', t);
  }
  console.log(
    `LUKS2 on plain files, median of ${N} (ms), load ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')}`,
  );
  console.log('| step | koffi → libcryptsetup | cryptsetup CLI (execFile) | ratio |');
  console.log('| --- | --- | --- | --- |');
  let sumF = 0;
  let sumC = 0;
  for (const k of Object.keys(ffi)) {
    const a = median(ffi[k] ?? []);
    const b = median(tool[k] ?? []);
    sumF += a;
    sumC += b;
    console.log(`| ${k} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${(b / a).toFixed(1)}× |`);
  }
  console.log(`| all six steps | ${sumF.toFixed(1)} | ${sumC.toFixed(1)} | ${(sumC / sumF).toFixed(1)}× |`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
