// Predicts PCR 11 of a UKI boot from the UKI's sections, the way systemd-stub 252 measures them: for each of
// .linux .osrel .cmdline .initrd, extend SHA-256("<name>\0") then SHA-256(<contents>). Prints the value after the
// stub and, as a cross-check against `systemd-measure calculate`, after the "enter-initrd" phase extend.
// Usage: node image/pcr11.mjs linux osrel cmdline initrd
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

const [linux, osrel, cmdline, initrd] = process.argv.slice(2);
const sha256 = (b) => createHash('sha256').update(b).digest();
let pcr = Buffer.alloc(32);
const extend = (digest) => {
  pcr = sha256(Buffer.concat([pcr, digest]));
};
for (const [name, file] of [
  ['.linux', linux],
  ['.osrel', osrel],
  ['.cmdline', cmdline],
  ['.initrd', initrd],
]) {
  extend(sha256(Buffer.from(`${name}\0`)));
  extend(sha256(readFileSync(file)));
}
const afterStub = pcr.toString('hex');
extend(sha256(Buffer.from('enter-initrd')));
console.log(afterStub, pcr.toString('hex'));
