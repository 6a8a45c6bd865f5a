import { createHash } from 'node:crypto';

/** Which end of the TLS connection produced an attestation; a document made for one end is useless to the other. */
export type ChannelRole = 'server' | 'client';

const LABEL = 'sextant attested TLS v1';

/**
 * The user data an attestation document must carry to be accepted on a connection: it names the TLS public key
 * of the attesting end. The quote then covers SHA-256(userData || verifier nonce), so a document proves
 * "this TPM state, answering this nonce, speaks through this TLS key".
 */
export function channelUserData(role: ChannelRole, spkiDer: Buffer): Buffer {
  return createHash('sha256').update(LABEL).update('\0').update(role).update('\0').update(spkiDer).digest();
}
