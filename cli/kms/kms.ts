// One interface for every place the master secret can be wrapped: the CLI hands a KMS the secret's bytes and gets
// back a blob to keep in the workspace, and back again; which KMS and key it used travels with every result.
import { describeKey, type KmsSpec } from './uri.js';

/** What the workspace keeps of a wrapped secret: nothing in it is secret without the KMS. */
export interface WrappedBlob {
  /** The wrapping key's version (transit: "2"; PKCS#11: the key's CKA_ID in hex). */
  keyVersion: string;
  /** The KMS's ciphertext, as text. */
  ciphertext: string;
}

export interface KeyWrapper {
  readonly spec: KmsSpec;
  /** Encrypts under the key's newest version. */
  wrap(plaintext: Buffer): Promise<WrappedBlob>;
  unwrap(blob: WrappedBlob): Promise<Buffer>;
  /** Releases sessions or libraries; the wrapper is unusable afterwards. */
  close(): Promise<void>;
}

/**
 * A KMS said no or could not be asked. One line: the KMS and key, what went wrong, what to do; never a credential,
 * a plaintext or a ciphertext.
 */
export class KmsError extends Error {
  override name = 'KmsError';
  constructor(
    readonly spec: KmsSpec,
    readonly problem: string,
    readonly todo: string,
  ) {
    super(`${describeKey(spec)}: ${problem}; ${todo}`);
  }
}
