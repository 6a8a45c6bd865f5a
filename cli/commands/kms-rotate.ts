// sextant kms rotate: rewraps the master secret under the KMS key's newest version (the secret, and so every disk
// key, stays the same); wraps a plain sextant-mastersecret.json when kms names a KMS. Idempotent.
import { loadConfig } from '../config/file.js';
import { rotateMasterSecret } from '../kms/master-secret.js';
import { parseKmsUri } from '../kms/uri.js';
import { lockWorkspace } from '../workspace/lock.js';
import { defineCommand } from './command.js';
import type { CommandContext } from './context.js';

export async function kmsRotate(ctx: CommandContext): Promise<number> {
  const config = await loadConfig(ctx.workspace);
  const spec = parseKmsUri(config.kms);
  const lock = await lockWorkspace(ctx.workspace, 'kms rotate');
  try {
    const result = await rotateMasterSecret(ctx.workspace, spec, ctx.env);
    ctx.stdout.write(
      result.changed
        ? `rewrapped the master secret: ${result.from} -> ${result.to}\n`
        : `unchanged: the master secret is wrapped by the newest key version (${result.to})\n`,
    );
    return 0;
  } finally {
    await lock.release();
  }
}

export const kmsRotateCommand = defineCommand<Record<string, never>>({
  path: ['kms', 'rotate'],
  summary: "rewrap the master secret under the KMS key's newest version",
  usage: 'sextant kms rotate',
  help: [
    "Unwraps the master secret with the key sextant-conf.yaml's kms names and wraps it again under that key's",
    'newest version (rotate the key in the KMS first, e.g. bao write -f transit/keys/KEY/rotate, or add a PKCS#11',
    'key with the same label and a higher CKA_ID). The secret itself does not change. Running it again changes',
    'nothing. With a plain sextant-mastersecret.json and kms set to a KMS, wraps it and removes the plain file.',
  ].join('\n'),
  options: {},
  maxPositionals: 0,
  parse: () => ({}),
  run: (ctx) => kmsRotate(ctx),
});
