// The init server's answer, kept so that an operator whose CLI never saw it (Ctrl-C, a dropped SSH session, the
// agent killed after init) can fetch it by sending the same init again. It holds the admin kubeconfig, so it is
// sealed to what only the owner has: the init secret (the node keeps only its hash) and the master secret. The
// node cannot open it again by itself; a repeated init from the same owner can.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import * as v from 'valibot';
import { writeFileAtomic } from '../../common/atomic-file.js';
import { deriveOwnerId, type MasterSecret } from '../../common/keys.js';
import { readTextIfExists } from '../../common/read-if-exists.js';
import { parseWith, strictObject } from '../../common/schema.js';
import { secretsEqual } from '../../common/secrets.js';
import { InitSuccess } from '../../gen/proto/init.js';
import { STATE_FILES, statePath } from '../lifecycle/layout.js';

const INIT_REPLY_FILE = STATE_FILES.initReply.name;

const text = v.pipe(v.string('expected a string'), v.nonEmpty('expected a non-empty string'));

const sealedInitReplySchema = strictObject(
  {
    version: v.literal(1, 'expected 1'),
    /** hex; lets a request from another owner be refused with a clear reason before any decryption. */
    ownerId: text,
    nonce: text,
    ciphertext: text,
    tag: text,
  },
  'a JSON object',
);

export type SealedInitReply = v.InferOutput<typeof sealedInitReplySchema>;

const INFO = Buffer.from('sextant init reply v1', 'utf8');

function replyKey(initSecret: Buffer, master: MasterSecret): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.concat([initSecret, master.key]), master.salt, INFO, 32));
}

export function sealInitReply(
  success: InitSuccess,
  initSecret: Buffer,
  master: MasterSecret,
): SealedInitReply {
  const ownerId = deriveOwnerId(master);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', replyKey(initSecret, master), nonce);
  cipher.setAAD(ownerId);
  const ciphertext = Buffer.concat([cipher.update(InitSuccess.encode(success).finish()), cipher.final()]);
  return {
    version: 1,
    ownerId: ownerId.toString('hex'),
    nonce: nonce.toString('base64'),
    ciphertext: ciphertext.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
  };
}

/** True when the sealed reply was made for this master secret's owner (the init secret is checked on opening). */
export function sameOwner(sealed: SealedInitReply, master: MasterSecret): boolean {
  return secretsEqual(Buffer.from(sealed.ownerId, 'hex'), deriveOwnerId(master));
}

/** The kept answer, or undefined when these secrets are not the ones it was sealed to. */
export function openInitReply(
  sealed: SealedInitReply,
  initSecret: Buffer,
  master: MasterSecret,
): InitSuccess | undefined {
  if (!sameOwner(sealed, master)) return undefined;
  try {
    const decipher = createDecipheriv(
      'aes-256-gcm',
      replyKey(initSecret, master),
      Buffer.from(sealed.nonce, 'base64'),
    );
    decipher.setAAD(Buffer.from(sealed.ownerId, 'hex'));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    const plain = Buffer.concat([
      decipher.update(Buffer.from(sealed.ciphertext, 'base64')),
      decipher.final(),
    ]);
    return InitSuccess.decode(plain);
  } catch {
    return undefined;
  }
}

/** The sealed reply on disk, 0600 in the agent's state directory; removed with the rest of the node's state. */
export class InitReplyStore {
  readonly path: string;

  constructor(stateDir: string) {
    this.path = statePath(stateDir, 'initReply');
  }

  async save(sealed: SealedInitReply): Promise<void> {
    await writeFileAtomic(this.path, `${JSON.stringify(sealed)}\n`, { mode: 0o600 });
  }

  async load(): Promise<SealedInitReply | undefined> {
    let body: string | undefined;
    try {
      body = await readTextIfExists(this.path);
    } catch (err) {
      throw new Error(`${INIT_REPLY_FILE}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (body === undefined) return undefined;
    let doc: unknown;
    try {
      doc = JSON.parse(body);
    } catch {
      throw new Error(`${INIT_REPLY_FILE}: not valid JSON`);
    }
    try {
      // sealed, but still not quoted in errors
      return parseWith(sealedInitReplySchema, doc, { redact: true });
    } catch (err) {
      throw new Error(`${INIT_REPLY_FILE}: ${(err as Error).message}`);
    }
  }

  async clear(): Promise<void> {
    await rm(this.path, { force: true });
  }
}
