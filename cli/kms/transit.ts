// An OpenBao/Vault transit engine wraps the master secret: the CLI sends the secret to .../encrypt/KEY over the
// operator's channel and keeps only the ciphertext; .../decrypt/KEY gives it back to a token allowed to ask.
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import * as v from 'valibot';
import { parseWith } from '../../common/schema.js';
import { CredentialError, transitToken } from './credentials.js';
import { type KeyWrapper, KmsError, type WrappedBlob } from './kms.js';
import type { KmsSpec } from './uri.js';

type TransitSpec = Extract<KmsSpec, { mode: 'transit' }>;

const REQUEST_TIMEOUT_MS = 10_000;
/** Node's codes for a certificate that does not chain to the trusted CAs or name the host. */
const TLS_VERIFY = /CERT|SIGNATURE|ISSUER|ALTNAME/;
/** Node's codes for a server that does not answer TLS at all (e.g. plain http behind an https URI). */
const TLS_HANDSHAKE = /^(EPROTO|ERR_SSL_)/;
/** Transit ciphertexts name their key version: vault:v3:… */
const CIPHERTEXT = /^vault:v([1-9][0-9]{0,9}):[A-Za-z0-9+/=]+$/;

const encryptAnswer = v.object({
  data: v.object({ ciphertext: v.pipe(v.string(), v.regex(CIPHERTEXT, 'expected a transit ciphertext')) }),
});
const decryptAnswer = v.object({ data: v.object({ plaintext: v.string() }) });
const errorAnswer = v.object({ errors: v.array(v.string()) });

interface Answer {
  status: number;
  body: unknown;
}

export class TransitWrapper implements KeyWrapper {
  readonly spec: TransitSpec;
  readonly #env: NodeJS.ProcessEnv;
  #token: string | undefined;

  constructor(spec: TransitSpec, env: NodeJS.ProcessEnv) {
    this.spec = spec;
    this.#env = env;
  }

  #fail(problem: string, todo: string): never {
    throw new KmsError(this.spec, problem, todo);
  }

  async #post(op: 'encrypt' | 'decrypt', payload: Record<string, string>): Promise<Answer> {
    if (this.#token === undefined) {
      try {
        this.#token = await transitToken(this.#env);
      } catch (err) {
        if (err instanceof CredentialError)
          this.#fail(err.message, 'give the CLI a token whose policy allows encrypt and decrypt of this key');
        throw err;
      }
    }
    const url = new URL(
      `${this.spec.address}/v1/${this.spec.mount}/${op}/${encodeURIComponent(this.spec.key)}`,
    );
    const body = Buffer.from(JSON.stringify(payload));
    let ca: Buffer | undefined;
    if (this.spec.caFile !== undefined) {
      try {
        ca = readFileSync(this.spec.caFile);
      } catch (err) {
        this.#fail(
          `ca-file ${this.spec.caFile}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
          'fix ca-file in the kms URI',
        );
      }
    }
    const token = this.#token;
    return new Promise<Answer>((resolve, reject) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(
        url,
        {
          method: 'POST',
          headers: {
            'X-Vault-Token': token,
            'Content-Type': 'application/json',
            'Content-Length': body.length,
          },
          timeout: REQUEST_TIMEOUT_MS,
          ...(ca ? { ca } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text === '' ? {} : JSON.parse(text);
            } catch {
              parsed = undefined;
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(body);
    }).catch((err: NodeJS.ErrnoException) => {
      if (err instanceof KmsError) throw err;
      const code = err.code ?? err.message.slice(0, 80);
      if (TLS_VERIFY.test(code)) {
        const against = this.spec.caFile !== undefined ? `ca-file ${this.spec.caFile}` : "the system's CAs";
        return this.#fail(
          `the server's TLS certificate does not verify against ${against} (${code})`,
          'set ca-file in the kms URI to the CA that issued the server certificate',
        );
      }
      if (TLS_HANDSHAKE.test(code)) {
        return this.#fail(
          `no TLS handshake (${code})`,
          'check that the server speaks https at this address, or use transit+http for a plain one',
        );
      }
      return this.#fail(
        `unreachable (${code})`,
        'start the server or fix the address in the kms URI of sextant-conf.yaml',
      );
    });
  }

  /** Turns a refusal into the one line the operator needs; `op` says what was asked. */
  #refused(op: 'encrypt' | 'decrypt', answer: Answer): never {
    const errors = v.is(errorAnswer, answer.body) ? answer.body.errors.join('; ') : '';
    if (answer.status === 403) {
      this.#fail(
        `permission denied for ${op} (the token is unknown, expired or revoked, or its policy does not allow ${this.spec.mount}/${op}/${this.spec.key})`,
        'get a token allowed to use this key (BAO_TOKEN), or check the key name in the kms URI',
      );
    }
    if (answer.status === 503 || /sealed/i.test(errors)) {
      this.#fail(
        'the server is sealed or not ready',
        'unseal it (bao operator unseal) and run the command again',
      );
    }
    if (
      /key not found|no existing key named/i.test(errors) ||
      (answer.status === 400 && op === 'decrypt' && /not found/i.test(errors))
    ) {
      this.#fail(
        'no such key',
        `create it (bao write -f ${this.spec.mount}/keys/${this.spec.key}) or fix the key name in the kms URI`,
      );
    }
    if (answer.status === 404) {
      this.#fail(
        `no transit engine at mount "${this.spec.mount}"`,
        'enable it (bao secrets enable transit) or fix the mount in the kms URI',
      );
    }
    if (op === 'decrypt' && answer.status === 400) {
      this.#fail(
        'the wrapped master secret does not decrypt under this key (wrapped by another key, or corrupted)',
        'restore sextant-mastersecret.wrapped.json from a backup, or point kms at the key that wrapped it',
      );
    }
    this.#fail(`unexpected answer to ${op} (HTTP ${answer.status})`, "check the server's log");
  }

  async wrap(plaintext: Buffer): Promise<WrappedBlob> {
    const answer = await this.#post('encrypt', { plaintext: plaintext.toString('base64') });
    if (answer.status !== 200) this.#refused('encrypt', answer);
    let ciphertext: string;
    try {
      ciphertext = parseWith(encryptAnswer, answer.body, { redact: true }).data.ciphertext;
    } catch {
      return this.#fail(
        'the encrypt answer holds no transit ciphertext',
        'check that the address is a transit engine',
      );
    }
    const version = CIPHERTEXT.exec(ciphertext)?.[1] as string;
    return { keyVersion: version, ciphertext };
  }

  async unwrap(blob: WrappedBlob): Promise<Buffer> {
    const match = CIPHERTEXT.exec(blob.ciphertext);
    if (!match || match[1] !== blob.keyVersion) {
      this.#fail(
        'the wrapped master secret is corrupted (not a transit ciphertext of the recorded key version)',
        'restore sextant-mastersecret.wrapped.json from a backup',
      );
    }
    const answer = await this.#post('decrypt', { ciphertext: blob.ciphertext });
    if (answer.status !== 200) this.#refused('decrypt', answer);
    let plaintext: string;
    try {
      plaintext = parseWith(decryptAnswer, answer.body, { redact: true }).data.plaintext;
    } catch {
      return this.#fail(
        'the decrypt answer holds no plaintext',
        'check that the address is a transit engine',
      );
    }
    return Buffer.from(plaintext, 'base64');
  }

  async close(): Promise<void> {
    this.#token = undefined;
  }
}
