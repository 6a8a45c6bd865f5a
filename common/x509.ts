// @peculiar/x509 with Node's WebCrypto as its provider, set once here: every module that makes or reads
// certificates (attested TLS identities, kubelet CSRs and certificates) imports x509 from this module.
import { webcrypto } from 'node:crypto';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
